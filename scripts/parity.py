#!/usr/bin/env python3
"""Parity of `minirbt-stream infer` with transformers on the BERT shapes MiniRBT Stream targets.

For each shape, builds a random-weight BertForSequenceClassification (21128-token vocabulary, 2 labels),
saves it as model.safetensors (F32) and as pytorch_model.bin (torch.save of the state dict) with the
shared bert-base-chinese vocab.txt copied in, runs the first --texts ChnSentiCorp dev texts through
transformers (padded batches with an attention mask, max_length 128) and through our CLI, and prints
the largest |logit difference| per shape and format as a Markdown table.

Not part of CI (it needs torch). Run from the package root after building the CLI:

    swift build --product minirbt-stream
    /root/.cache/minirbt-peers/bin/python scripts/parity.py [--binary .build/debug/minirbt-stream] [--texts 64]

The weights are redrawn with fan-in scaling rather than BERT's 0.02 init, so every block moves the
logits well away from zero and a wrong block cannot hide behind tiny activations.
"""

import argparse
import json
import math
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import torch
from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

PACKAGE = pathlib.Path(__file__).resolve().parents[1]
SHARED = PACKAGE.parent / "shared"
VOCAB = SHARED / "data" / "vocab.txt"
DEV = SHARED / "data" / "chnsenticorp" / "dev.jsonl"

# name: (layers, hidden, intermediate, heads)
SHAPES = {
    "MiniRBT-H256": (6, 256, 1024, 8),
    "MiniRBT-H288": (6, 288, 1152, 8),
    "RBT4-H312": (4, 312, 1200, 12),
    "RBT3": (3, 768, 3072, 12),
    "RBT6": (6, 768, 3072, 12),
    "RoBERTa-wwm-ext": (12, 768, 3072, 12),
}
MAX_LENGTH = 128


def build_model(layers, hidden, intermediate, heads, seed):
    config = BertConfig(vocab_size=21128, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                        intermediate_size=intermediate, max_position_embeddings=512, type_vocab_size=2,
                        num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    config.architectures = ["BertForSequenceClassification"]
    model = BertForSequenceClassification(config)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            if name.endswith("LayerNorm.weight"):
                parameter.copy_(1 + 0.1 * noise)
            elif name.endswith("bias"):
                parameter.copy_(0.1 * noise)
            elif "embeddings" in name:
                parameter.copy_(0.5 * noise)
            else:
                parameter.copy_(noise / math.sqrt(parameter.shape[1]))
    return model.eval()


def save(model, directory, fmt):
    directory.mkdir(parents=True)
    if fmt == "safetensors":
        model.save_pretrained(directory)
    else:
        model.config.save_pretrained(directory)
        torch.save(model.state_dict(), directory / "pytorch_model.bin")
    shutil.copy(VOCAB, directory / "vocab.txt")


def transformers_logits(model, tokenizer, texts, batch_size=16):
    logits = []
    with torch.no_grad():
        for start in range(0, len(texts), batch_size):
            encoded = tokenizer(texts[start:start + batch_size], truncation=True, max_length=MAX_LENGTH,
                                padding=True, return_tensors="pt")
            logits += model(**encoded).logits.tolist()
    return logits


def cli_logits(binary, directory, input_path, threads):
    """Our logits per text and the wall time, or (None, error text) when the CLI fails."""
    output_path = directory / "out.jsonl"
    started = time.monotonic()
    run = subprocess.run([str(binary), "infer", "--model", str(directory), "--logits", "--precision", "fp32", "--max-length", str(MAX_LENGTH),
                          "--batch", "32", "--threads", str(threads), "--input", str(input_path),
                          "--output", str(output_path)], capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if run.returncode != 0:
        return None, (run.stderr.strip().splitlines() or [f"exit status {run.returncode}"])[-1]
    results = [json.loads(line) for line in output_path.read_text().splitlines() if line.strip()]
    failed = [result for result in results if "error" in result]
    if failed:
        return None, f"{len(failed)} lines rejected, first: {failed[0]['error']}"
    return [result["logits"] for result in results], elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--binary", default=str(PACKAGE / ".build" / "debug" / "minirbt-stream"))
    parser.add_argument("--texts", type=int, default=64, help="how many dev texts to compare (from the start)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    arguments = parser.parse_args()
    binary = pathlib.Path(arguments.binary)
    if not binary.exists():
        sys.exit(f"{binary} not found; build it with `swift build --product minirbt-stream` or pass --binary")

    lines = [json.loads(line) for line in DEV.read_text().splitlines()[:arguments.texts]]
    texts = [line["text"] for line in lines]
    rows = []
    with tempfile.TemporaryDirectory(prefix="minirbt-parity-") as temporary:
        root = pathlib.Path(temporary)
        input_path = root / "input.jsonl"
        input_path.write_text("".join(json.dumps({"id": line["id"], "text": line["text"]}, ensure_ascii=False) + "\n"
                                      for line in lines))
        for seed, name in enumerate(arguments.shapes):
            layers, hidden, intermediate, heads = SHAPES[name]
            model = build_model(layers, hidden, intermediate, heads, seed)
            for fmt in ("safetensors", "bin"):
                directory = root / name / fmt
                save(model, directory, fmt)
                if fmt == "safetensors":
                    reference = transformers_logits(model, BertTokenizer.from_pretrained(directory), texts)
                ours, elapsed = cli_logits(binary, directory, input_path, arguments.threads)
                dims = f"{layers}/{hidden}/{intermediate}/{heads}"
                if ours is None:
                    rows.append((name, dims, fmt, "—", "CLI failed: " + elapsed.replace("|", "\\|"), "—", "—", "—"))
                    print(f"{name} {fmt}: CLI failed: {elapsed}", file=sys.stderr)
                    continue
                difference = max(abs(a - b) for mine, theirs in zip(ours, reference) for a, b in zip(mine, theirs))
                agree = sum((m[1] > m[0]) == (t[1] > t[0]) for m, t in zip(ours, reference))
                spread = max(abs(value) for pair in reference for value in pair)
                rows.append((name, dims, fmt, len(ours), f"{difference:.2e}", f"{agree}/{len(ours)}",
                             f"{spread:.2f}", f"{elapsed:.1f}"))
                print(f"{name} {fmt}: max |logit diff| {difference:.2e}", file=sys.stderr)
            shutil.rmtree(root / name)  # the 12-layer checkpoints are ~400 MB per format

    print("| shape | layers/hidden/ffn/heads | weights | texts | max \\|logit diff\\| | same label | max \\|logit\\| | CLI time (s) |")
    print("|---|---|---|---|---|---|---|---|")
    for name, dims, fmt, count, difference, agree, spread, elapsed in rows:
        print(f"| {name} | {dims} | {fmt} | {count} | {difference} | {agree} | {spread} | {elapsed} |")


if __name__ == "__main__":
    main()
