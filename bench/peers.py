#!/usr/bin/env python3
"""Side-by-side throughput of minirbt-bench and the Python runtimes people would otherwise use.

In one invocation, for each model shape, rounds alternate between engines so machine load drifts
affect all of them alike:

  ours          minirbt-bench --json (fp32, bf16, int8), random weights of the shape
  torch         PyTorch eager (transformers BertForSequenceClassification), fp32
  ort-fp32      ONNX Runtime, graph exported from the same transformers model and fused by
                onnxruntime.transformers.optimizer (attention, LayerNorm, GELU fusions)
  ort-int8      that graph after onnxruntime.quantization.quantize_dynamic (int8 weights, dynamic u8 activations)
  openvino-bf16 OpenVINO reading the optimized ONNX graph, INFERENCE_PRECISION_HINT=bf16

All engines get the same configuration and batch shapes (B texts of exactly S tokens, no padding),
the same thread count, and the same timing rule: warm-up, then the median batch latency of timed runs;
a cell's figure is the best round's median. Needs the peers venv (torch, transformers, onnx,
onnxruntime, openvino); never run in CI.

    /root/.cache/minirbt-peers/bin/python bench/peers.py --bench .build-perf/release/minirbt-bench
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

SHAPES = {
    "MiniRBT-H256": (6, 256, 1024, 8),
    "MiniRBT-H288": (6, 288, 1152, 8),
    "RBT4-H312": (4, 312, 1200, 12),
    "RoBERTa-wwm-ext": (12, 768, 3072, 12),
}
VOCAB = 21128
PEERS = ["torch", "ort-fp32", "ort-int8", "openvino-bf16"]


def parse_shape(text):
    batch, length = text.lower().split("x")
    return int(batch), int(length)


def timed(run, warm_up, min_runs, seconds):
    for _ in range(warm_up):
        run()
    samples = []
    start = time.perf_counter()
    while len(samples) < min_runs or (len(samples) < 200 and time.perf_counter() - start < seconds):
        t0 = time.perf_counter()
        run()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


class Peers:
    """The four Python engines for one model shape, built once and reused across rounds."""

    def __init__(self, name, threads, workdir):
        import numpy as np
        import torch
        from transformers import BertConfig, BertForSequenceClassification

        layers, hidden, ffn, heads = SHAPES[name]
        torch.manual_seed(0)
        torch.set_num_threads(threads)
        config = BertConfig(vocab_size=VOCAB, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=ffn, max_position_embeddings=512, num_labels=2)
        config._attn_implementation = "eager"  # the pattern ORT's optimizer fuses
        self.model = BertForSequenceClassification(config).eval()
        self.threads, self.heads, self.hidden = threads, heads, hidden
        self.np, self.torch = np, torch
        self.onnx_path = os.path.join(workdir, f"{name}.onnx")
        self.fused_path = os.path.join(workdir, f"{name}-opt.onnx")
        self.int8_path = os.path.join(workdir, f"{name}-int8.onnx")
        self._export()
        self.sessions = {}

    def _export(self):
        torch = self.torch
        ids = torch.randint(672, VOCAB, (2, 16))
        inputs = (ids, torch.ones_like(ids), torch.zeros_like(ids))
        axes = {0: "batch", 1: "sequence"}
        torch.onnx.export(self.model, inputs, self.onnx_path, input_names=["input_ids", "attention_mask", "token_type_ids"],
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={"input_ids": axes, "attention_mask": axes, "token_type_ids": axes, "logits": {0: "batch"}})
        from onnxruntime.transformers.optimizer import optimize_model
        optimized = optimize_model(self.onnx_path, model_type="bert", num_heads=self.heads, hidden_size=self.hidden)
        optimized.save_model_to_file(self.fused_path)
        from onnxruntime.quantization import QuantType, quantize_dynamic
        import onnx
        # The fused Attention op is a contrib op shape inference cannot type; its outputs are float.
        quantize_dynamic(self.fused_path, self.int8_path, weight_type=QuantType.QInt8,
                         extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})

    def runner(self, engine, batch, length):
        np, torch = self.np, self.torch
        ids = np.random.default_rng(batch * 1000 + length).integers(672, VOCAB, (batch, length), dtype=np.int64)
        feed = {"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}
        if engine == "torch":
            tensors = {key: torch.from_numpy(value) for key, value in feed.items()}

            def run():
                with torch.inference_mode():
                    self.model(**tensors)
            return run
        if engine.startswith("ort"):
            import onnxruntime as ort
            if engine not in self.sessions:
                options = ort.SessionOptions()
                options.intra_op_num_threads = self.threads
                options.inter_op_num_threads = 1
                path = self.fused_path if engine == "ort-fp32" else self.int8_path
                self.sessions[engine] = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
            session = self.sessions[engine]
            return lambda: session.run(None, feed)
        if engine == "openvino-bf16":
            import openvino as ov
            if engine not in self.sessions:
                core = ov.Core()
                self.sessions[engine] = core.compile_model(core.read_model(self.fused_path), "CPU", {
                    "INFERENCE_PRECISION_HINT": "bf16", "INFERENCE_NUM_THREADS": str(self.threads),
                    "PERFORMANCE_HINT": "LATENCY"})
            request = self.sessions[engine].create_infer_request()
            return lambda: request.infer(feed)
        raise ValueError(engine)


def ours(bench, name, shapes, precisions, threads, seconds):
    command = [bench, "--json", "--model", name, "--threads", str(threads), "--seconds", str(seconds),
               "--shape", *[f"{b}x{s}" for b, s in shapes], "--precision", *precisions]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return {(f"ours-{m['precision']}", m["batch"], m["length"]): m["medianMilliseconds"] / 1e3 for m in json.loads(output)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bench", required=True, help="path to a release build of minirbt-bench")
    parser.add_argument("--models", nargs="+", default=["MiniRBT-H256"], choices=list(SHAPES))
    parser.add_argument("--shapes", nargs="+", default=["1x32", "32x64", "32x128"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per cell and round")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    shapes = [parse_shape(s) for s in args.shapes]
    engines = [f"ours-{p}" for p in args.precisions] + PEERS

    results = {}  # (model, engine, B, S) -> best median seconds
    with tempfile.TemporaryDirectory(prefix="minirbt-peers-") as workdir:
        for name in args.models:
            print(f"[{name}] exporting and optimizing the peer graphs...", file=sys.stderr)
            peers = Peers(name, args.threads, workdir)
            for round_index in range(args.rounds):
                print(f"[{name}] round {round_index + 1}/{args.rounds}", file=sys.stderr)
                for (engine, batch, length), seconds in ours(args.bench, name, shapes, args.precisions,
                                                             args.threads, args.seconds).items():
                    key = (name, engine, batch, length)
                    results[key] = min(results.get(key, float("inf")), seconds)
                for engine in PEERS:
                    for batch, length in shapes:
                        try:
                            median = timed(peers.runner(engine, batch, length), 2, 3, args.seconds)
                        except Exception as error:  # a peer missing on this machine must not sink the table
                            print(f"  {engine} B={batch},S={length}: {error}", file=sys.stderr)
                            continue
                        key = (name, engine, batch, length)
                        results[key] = min(results.get(key, float("inf")), median)

    def rate(name, engine, batch, length):
        seconds = results.get((name, engine, batch, length))
        return batch / seconds if seconds else None

    def cell(value, digits=0):
        return "—" if value is None else f"{value:.{digits}f}"

    print(f"sequences/s, {args.threads} thread(s), best of {args.rounds} round medians")
    header = ["model", "B,S"] + engines + ["fp32 / ort-fp32", "best fast / ort-int8", "best fast / openvino-bf16"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.models:
        for batch, length in shapes:
            rates = {engine: rate(name, engine, batch, length) for engine in engines}
            fast = max((rates[e] for e in engines if e.startswith("ours-") and e != "ours-fp32" and rates[e]), default=None)

            def ratio(a, b):
                return f"{a / b:.2f}×" if a and b else "—"
            row = [name, f"{batch},{length}"] + [cell(rates[e]) for e in engines]
            row += [ratio(rates.get("ours-fp32"), rates["ort-fp32"]), ratio(fast, rates["ort-int8"]),
                    ratio(fast, rates["openvino-bf16"])]
            print("| " + " | ".join(row) + " |")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump([{"model": m, "engine": e, "batch": b, "length": s, "sequencesPerSecond": b / t}
                       for (m, e, b, s), t in sorted(results.items())], handle, indent=1)


if __name__ == "__main__":
    main()
