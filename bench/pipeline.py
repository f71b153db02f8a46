#!/usr/bin/env python3
"""Pipeline benchmark: `minirbt-stream run` through the local broker, beside its peers, in one run.

Contenders, each on fresh topics of the same broker with the same events (the shared dev reviews repeated):
  infer        offline `minirbt-stream infer` over the same events (no Kafka): the engine's ceiling
  run          `minirbt-stream run --model v1` (consumer group, sharded, at-least-once commits)
  run+teacher  the same with `--teacher DIR --teacher-sample F` (only when --teacher is given): the teacher
               lane's cost is the ratio of the two rows
  run-eos      `run` with `--delivery exactly-once` (Kafka transactions; outputs read read_committed)
  run-canary   `run` following a registry deployment in a 50 % canary: v1 primary, v2 on half of the keys
  run-shadow   `run` following the same deployment with v2 in shadow: every event runs both models, v2's
               results go to a shadow topic
  (the run-* rows are not in the default --only: e.g. --only run,run-eos,run-canary,run-shadow)
  python-ort   a Python consumer: confluent-kafka + ONNX Runtime (the same checkpoint exported to ONNX),
               same batch size, tokenised with HF tokenizers
  passthrough  confluent-kafka consume → produce with no model: the broker-only ceiling

Two phases per Kafka contender:
  throughput   the topic holds every event before the contender starts; events/s is counted from the
               first result's timestamp to the last one's (a group's first join on Tansu takes ~20 s and is not counted)
  latency      events are then sent at a fixed rate below every contender's throughput; end-to-end
               latency = output record timestamp − input record timestamp, p50 and p99

Needs the peers venv (torch for the ONNX export, onnxruntime, confluent-kafka, tokenizers); not for CI:
  /root/.cache/minirbt-peers/bin/pip install onnx onnxruntime confluent-kafka
  /root/.cache/minirbt-peers/bin/python bench/pipeline.py --events 3000
"""
import argparse
import collections
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHARED = os.path.join(os.path.dirname(ROOT), "shared")
MODELS = os.path.join(SHARED, "models/minirbt-h256-chnsenticorp")
# What every single-model row serves: the same version as the canary and shadow rows' primary, so that
# their ratios to `run` measure the rollout mode, not a different checkpoint.
MODEL = os.path.join(MODELS, "v1")
DEV = os.path.join(SHARED, "data/chnsenticorp/dev.jsonl")


def sh(command, **kwargs):
    return subprocess.run(command, shell=True, check=True, text=True, capture_output=True, cwd=ROOT, **kwargs).stdout


def build(scratch_path):
    env_prefix = "source scripts/env.sh && "
    scratch = f" --scratch-path {scratch_path}" if scratch_path else ""
    # One product per invocation: `swift build` keeps only the last of several --product options.
    for product in ("minirbt-stream", "minirbt-admin"):
        sh(env_prefix + f"swift build -c release{scratch} --product {product} >&2", executable="/bin/bash")
    return sh(env_prefix + f"swift build -c release{scratch} --show-bin-path", executable="/bin/bash").strip()


def events(count):
    lines = [line for line in open(DEV, encoding="utf-8").read().splitlines() if line.strip()]
    return [lines[i % len(lines)] for i in range(count)]


class Broker:
    def __init__(self):
        self.state = tempfile.mkdtemp(prefix="minirbt-bench-")
        env = dict(os.environ, MINIRBT_BROKER_STATE=self.state)
        self.env = env
        self.address = subprocess.run(["bash", "scripts/broker.sh", "start"], cwd=ROOT, env=env, check=True,
                                      text=True, capture_output=True).stdout.strip()

    def stop(self):
        subprocess.run(["bash", "scripts/broker.sh", "stop"], cwd=ROOT, env=self.env, capture_output=True)


def create_topics(brokers, names, partitions=4, config=None):
    from confluent_kafka.admin import AdminClient, NewTopic
    admin = AdminClient({"bootstrap.servers": brokers})
    topics = [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in names]
    for future in admin.create_topics(topics).values():
        future.result()


def topic_name(kind, name):
    """A fresh topic name for a contender (row names hold characters Kafka refuses in topic names)."""
    return f"bench-{re.sub(r'[^A-Za-z0-9._-]+', '-', name).strip('-')}-{kind}-{uuid.uuid4().hex[:6]}"


def produce(brokers, topic, values, rate=None, prefix="event"):
    from confluent_kafka import Producer
    producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5})
    start = time.monotonic()
    for index, value in enumerate(values):
        if rate:
            delay = start + index / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        while True:
            try:
                producer.produce(topic, key=f"{prefix}-{index}", value=value)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    producer.flush(60)


def collect(brokers, topic, count, timeout, prefix=b"event-"):
    """Reads `count` records whose key starts with `prefix` from the start of `topic`:
    (arrival time, output timestamp, source timestamp, model version)."""
    from confluent_kafka import Consumer, TopicPartition
    # read_committed: an exactly-once contender's results count once their transaction commits.
    consumer = Consumer({"bootstrap.servers": brokers, "group.id": f"bench-reader-{uuid.uuid4()}",
                         "enable.auto.commit": False, "isolation.level": "read_committed"})
    consumer.assign([TopicPartition(topic, p, 0) for p in range(4)])
    seen = []
    deadline = time.monotonic() + timeout
    while len(seen) < count and time.monotonic() < deadline:
        for message in consumer.consume(500, 0.5):
            if message.error() or not (message.key() or b"").startswith(prefix):
                continue
            output_ts = message.timestamp()[1]
            source_ts = version = None
            try:
                result = json.loads(message.value())
                source_ts = result["source"]["timestamp"]
                version = (result.get("model") or {}).get("version")
            except Exception:
                pass
            seen.append((time.monotonic(), output_ts, source_ts, version))
    consumer.close()
    return seen


def summarise(records, count):
    if len(records) < 2:
        return {"events": len(records), "events_per_s": 0.0}
    # The outputs' own timestamps (set when each result was produced), not when this reader saw them.
    stamps = sorted(out for _, out, _, _ in records if out is not None)
    span = (stamps[-1] - stamps[0]) / 1000
    latencies = sorted(out - src for _, out, src, _ in records if src is not None and out is not None)
    result = {"events": len(records), "events_per_s": (len(records) - 1) / span if span > 0 else float("inf"),
              "versions": dict(collections.Counter(version for *_, version in records if version))}
    if latencies:
        result["p50_ms"] = latencies[len(latencies) // 2]
        result["p99_ms"] = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return result


# --- contenders ---------------------------------------------------------------------------------------------

def run_swift_service(binary, brokers, source, sink, args, serving):
    """`minirbt-stream run` from `source` to `sink` with the benchmark's shards, batch, threads and precision;
    `serving` are the options that choose the model and how it is served (`--model DIR`, `--delivery`, ...)."""
    log = open(os.path.join(tempfile.gettempdir(), f"bench-{source}.log"), "w")
    return subprocess.Popen([binary, "run", "--brokers", brokers, "--group", f"bench-{uuid.uuid4()}",
                             "--input-topic", source, "--output-topic", sink, "--dlq-topic", sink + "-dlq",
                             "--shards", str(args.shards), "--max-batch", str(args.batch),
                             "--threads-per-shard", str(args.threads), "--precision", args.precision,
                             "--metrics-port", "0"] + serving,
                            stdout=log, stderr=subprocess.STDOUT)


class ControlPlane:
    """A signing key (`minirbt-admin keygen`) and a registry holding v1 and v2 of the shared model
    (`minirbt-admin publish`), in `directory`: what the rows whose service follows a deployment share."""
    NAME = "minirbt-chnsenticorp"

    def __init__(self, admin, brokers, directory):
        self.admin, self.brokers = admin, brokers
        self.registry = os.path.join(directory, "registry")
        keys = os.path.join(directory, "keys")
        self.private_key = os.path.join(keys, "minirbt-control.key")
        self.public_key = os.path.join(keys, "minirbt-control.pub")
        self.run_admin("keygen", "--out", keys)
        for version in ("v1", "v2"):
            self.run_admin("publish", "--registry", self.registry, "--name", self.NAME, "--version", version,
                           "--model-dir", os.path.join(MODELS, version))

    def run_admin(self, *arguments):
        done = subprocess.run([self.admin, *arguments], text=True, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"minirbt-admin {' '.join(arguments)} exited {done.returncode}:\n{done.stdout}{done.stderr}")

    def follow(self, name, mode):
        """Deploys v1, then v2 with `mode` (`--canary 50`, `--shadow`), to a fresh deployment on fresh control
        and status topics; returns the `run` options that serve it. Deployed before the service starts: it
        reads the control topic to its end before consuming, so its first batch is already served this way."""
        deployment = topic_name("deployment", name)
        control, status = topic_name("control", name), topic_name("status", name)
        create_topics(self.brokers, [control, status], partitions=1, config={"cleanup.policy": "compact"})
        topics = ["--control-topic", control, "--status-topic", status]
        rollout = ["--registry", self.registry, "--model", self.NAME, "--brokers", self.brokers,
                   "--key", self.private_key] + topics
        self.run_admin("deploy", deployment, "v1", *rollout)
        self.run_admin("deploy", deployment, "v2", *mode, *rollout)
        # No --model fallback: a service that missed the deployment fails instead of measuring plain `run`.
        return ["--registry", self.registry, "--deployment", deployment, "--verify-key", self.public_key] + topics


PYTHON_CONSUMER = r'''
import json, sys, time
import numpy as np, onnxruntime as ort
from confluent_kafka import Consumer, Producer, TopicPartition
from tokenizers import BertWordPieceTokenizer
brokers, source, sink, model_onnx, vocab, batch, threads, with_model = sys.argv[1:9]
batch, threads, with_model = int(batch), int(threads), with_model == "1"
consumer = Consumer({"bootstrap.servers": brokers, "group.id": "bench-python-" + source, "enable.auto.commit": False})
consumer.assign([TopicPartition(source, p, 0) for p in range(4)])
producer = Producer({"bootstrap.servers": brokers, "linger.ms": 5, "enable.idempotence": True})
if with_model:
    options = ort.SessionOptions(); options.intra_op_num_threads = threads
    session = ort.InferenceSession(model_onnx, options, providers=["CPUExecutionProvider"])
    tokenizer = BertWordPieceTokenizer(vocab, lowercase=True)
    tokenizer.enable_truncation(128)
    tokenizer.enable_padding()
while True:
    messages = [m for m in consumer.consume(batch, 0.01) if not m.error()]
    if not messages:
        continue
    if with_model:
        texts = [json.loads(m.value())["text"] for m in messages]
        encodings = tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        logits = session.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]
        probabilities = np.exp(logits - logits.max(1, keepdims=True)); probabilities /= probabilities.sum(1, keepdims=True)
    for index, m in enumerate(messages):
        result = {"source": {"topic": m.topic(), "partition": m.partition(), "offset": m.offset(), "timestamp": m.timestamp()[1]}}
        if with_model:
            label = int(probabilities[index].argmax())
            result.update({"label": ["negative", "positive"][label], "score": float(probabilities[index][label])})
        producer.produce(sink, key=m.key(), value=json.dumps(result))
    producer.poll(0)
    consumer.commit(asynchronous=True)
'''


def export_onnx(directory):
    path = os.path.join(directory, "model.onnx")
    import torch
    from transformers import BertForSequenceClassification
    model = BertForSequenceClassification.from_pretrained(MODEL).eval()
    dummy = torch.ones(1, 16, dtype=torch.long)
    torch.onnx.export(model, (dummy, dummy, torch.zeros_like(dummy)), path,
                      input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["logits"],
                      dynamic_axes={n: {0: "batch", 1: "sequence"} for n in ["input_ids", "attention_mask", "token_type_ids"]},
                      opset_version=17, dynamo=False)
    return path


def run_python_consumer(brokers, source, sink, onnx_path, batch, threads, with_model):
    script = os.path.join(tempfile.gettempdir(), "bench_python_consumer.py")
    open(script, "w").write(PYTHON_CONSUMER)
    log = open(os.path.join(tempfile.gettempdir(), f"bench-{source}.log"), "w")
    return subprocess.Popen([sys.executable, script, brokers, source, sink, onnx_path or "-",
                             os.path.join(SHARED, "data/vocab.txt"), str(batch), str(threads), "1" if with_model else "0"],
                            stdout=log, stderr=subprocess.STDOUT)


def measure(name, brokers, start, count, values, rate):
    source, sink = topic_name("in", name), topic_name("out", name)
    create_topics(brokers, [source, sink, sink + "-dlq"])
    produce(brokers, source, values[:count])
    process = start(source, sink)
    try:
        throughput = summarise(collect(brokers, sink, count, timeout=900), count)
        paced = values[:max(50, min(count // 4, int(rate * 20)))]
        sender = threading.Thread(target=produce, args=(brokers, source, paced, rate, "paced"))
        sender.start()
        latency_records = collect(brokers, sink, len(paced), timeout=300, prefix=b"paced-")
        sender.join()
        latency = summarise(latency_records, len(paced))
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
    return {"name": name, "events_per_s": throughput["events_per_s"], "events": throughput["events"],
            "p50_ms": latency.get("p50_ms"), "p99_ms": latency.get("p99_ms"), "paced_rate": rate,
            "paced_events": latency["events"], "paced_sent": len(paced), "versions": throughput.get("versions", {})}


# The `minirbt-stream run` contenders: --only key → row name.
RUN_VARIANTS = {"run": "run", "run-eos": "run exactly-once", "run-canary": "run canary 50%", "run-shadow": "run shadow"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--scratch-path", help="swift build --scratch-path for the release build (default: .build)")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="oneDNN threads per shard; ONNX Runtime gets shards × threads")
    parser.add_argument("--rate", type=float, default=40.0, help="events/s of the latency phase")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                        help="--precision of infer and run (auto: the fastest on this CPU, the service's default)")
    parser.add_argument("--only", default="infer,run,python-ort,passthrough",
                        help="comma-separated contenders; also " + ", ".join(
                            f"{key} ({name.replace('%', '%%')})" for key, name in RUN_VARIANTS.items() if key != "run"))
    parser.add_argument("--teacher", help="checkpoint directory of a teacher: adds a run+teacher row (run --teacher DIR)")
    parser.add_argument("--teacher-sample", type=float, default=0.02, help="run --teacher-sample of the run+teacher row")
    args = parser.parse_args()
    only = set(args.only.split(","))

    bin_dir = build(args.scratch_path)
    binary = os.path.join(bin_dir, "minirbt-stream")
    admin = os.path.join(bin_dir, "minirbt-admin")
    values = events(args.events)
    rows = []

    if "infer" in only:
        with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
            handle.write("\n".join(values) + "\n")
        began = time.monotonic()
        subprocess.run([binary, "infer", "--model", MODEL, "--input", handle.name, "--output", "/dev/null",
                        "--batch", str(args.batch), "--threads", str(args.shards * args.threads),
                        "--precision", args.precision], check=True)
        rows.append({"name": "infer (offline)", "events_per_s": len(values) / (time.monotonic() - began),
                     "events": len(values)})

    broker = Broker()
    try:
        with tempfile.TemporaryDirectory() as scratch:
            def measure_run(name, serving):
                rows.append(measure(name, broker.address,
                                    lambda s, o: run_swift_service(binary, broker.address, s, o, args, serving),
                                    args.events, values, args.rate))
                return rows[-1]

            plane = None
            for key, name in RUN_VARIANTS.items():
                if key not in only:
                    continue
                if key in ("run-canary", "run-shadow") and plane is None:
                    plane = ControlPlane(admin, broker.address, os.path.join(scratch, "control"))
                if key == "run":
                    measure_run(name, ["--model", MODEL])
                    if args.teacher:
                        # The teacher's soft labels are not published: the lane's inference and queueing are measured.
                        measure_run("run+teacher", ["--model", MODEL, "--teacher", args.teacher,
                                                    "--teacher-sample", str(args.teacher_sample)])
                elif key == "run-eos":
                    # With no --transactional-id, the transactional id is <group>-<instance id>: fresh per row.
                    measure_run(name, ["--model", MODEL, "--delivery", "exactly-once",
                                       "--instance-id", f"bench-{uuid.uuid4()}"])
                elif key == "run-canary":
                    measure_run(name, plane.follow(name, ["--canary", "50"]))
                elif key == "run-shadow":
                    shadow = topic_name("shadow", name)
                    create_topics(broker.address, [shadow])
                    row = measure_run(name, plane.follow(name, ["--shadow"]) + ["--shadow-topic", shadow])
                    # Every event (throughput and latency phases) should also have a candidate result here.
                    expected = row["events"] + row["paced_events"]
                    row["shadow_results"] = len(collect(broker.address, shadow, expected, timeout=60, prefix=b""))
            if "python-ort" in only:
                onnx_path = export_onnx(scratch)
                rows.append(measure("python-ort", broker.address,
                                    lambda s, o: run_python_consumer(broker.address, s, o, onnx_path, args.batch,
                                                                     args.shards * args.threads, True),
                                    args.events, values, args.rate))
            if "passthrough" in only:
                rows.append(measure("passthrough", broker.address,
                                    lambda s, o: run_python_consumer(broker.address, s, o, None, args.batch, 1, False),
                                    args.events, values, args.rate))
    finally:
        broker.stop()

    print(f"\nPipeline benchmark: {args.events} events (ChnSentiCorp dev repeated), batch {args.batch}, "
          f"{args.shards} shards × {args.threads} thread(s), {args.precision}; latency phase at {args.rate:g} events/s")
    print(f"{'contender':<18} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8}")
    for row in rows:
        p50 = f"{row['p50_ms']:.0f}" if row.get("p50_ms") is not None else "-"
        p99 = f"{row['p99_ms']:.0f}" if row.get("p99_ms") is not None else "-"
        print(f"{row['name']:<18} {row['events_per_s']:>10.1f} {p50:>8} {p99:>8}")
    for row in rows:
        if "paced_sent" in row:
            answered = (f"{row['events']}/{args.events} events answered, {row['paced_events']}/{row['paced_sent']} "
                        f"in the latency phase")
            versions = ", ".join(f"{v} {n}" for v, n in sorted(row["versions"].items()))
            shadow = f"; {row['shadow_results']} shadow results" if "shadow_results" in row else ""
            print(f"  {row['name']}: {answered}; results by model version: {versions or '-'}{shadow}")
    by_name = {row["name"]: row for row in rows}
    if "run" in by_name and "infer (offline)" in by_name:
        print(f"run / offline infer: {by_name['run']['events_per_s'] / by_name['infer (offline)']['events_per_s']:.2f}×")
    for name, label, note in [("run+teacher", "run+teacher / run", f" (teacher {args.teacher}, sample {args.teacher_sample:g})"),
                              (RUN_VARIANTS["run-eos"], "eos / run", ""),
                              (RUN_VARIANTS["run-canary"], "canary / run", " (target ≥ 0.9×)"),
                              (RUN_VARIANTS["run-shadow"], "shadow / run", " (target ≥ 0.45×)")]:
        if "run" in by_name and name in by_name:
            print(f"{label + ':':<20} {by_name[name]['events_per_s'] / by_name['run']['events_per_s']:.2f}×{note}")
    if "run" in by_name and "python-ort" in by_name:
        print(f"run / python-ort:    {by_name['run']['events_per_s'] / by_name['python-ort']['events_per_s']:.2f}×")
    json.dump(rows, open(os.path.join(tempfile.gettempdir(), "minirbt-pipeline-bench.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
