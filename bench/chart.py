#!/usr/bin/env python3
"""Draws the peers tables as one PNG: a panel per batch shape and thread count, a bar per engine.

Reads the JSON that `bench/peers.py --json FILE` writes (one file per thread count). Needs matplotlib in
the peers venv; not for CI:

    /root/.cache/minirbt-peers/bin/pip install matplotlib
    /root/.cache/minirbt-peers/bin/python bench/chart.py --model MiniRBT-H256 \\
        --run "2 threads=bench/results/peers-h256-t2.json" --run "1 thread=bench/results/peers-h256-t1.json" \\
        --out bench/results/peers-h256.png
"""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)

# Ours in blues, the peers in warm colours, in the order of the README tables.
ENGINES = [
    ("ours-fp32", "ours fp32", "#9ecae1"),
    ("ours-bf16", "ours bf16", "#4292c6"),
    ("ours-int8", "ours int8", "#08519c"),
    ("torch", "PyTorch", "#bdbdbd"),
    ("ort-fp32", "ORT fp32", "#fdae6b"),
    ("ort-int8", "ORT int8", "#e6550d"),
    ("openvino-bf16", "OpenVINO bf16", "#756bb1"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--run", action="append", required=True, metavar="LABEL=FILE",
                        help="a peers.py JSON file and the label of its row of panels (repeatable)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    runs = []
    for run in args.run:
        label, _, path = run.partition("=")
        with open(path) as handle:
            cells = [cell for cell in json.load(handle) if cell["model"] == args.model]
        runs.append((label, cells))
    shapes = sorted({(cell["batch"], cell["length"]) for _, cells in runs for cell in cells})

    figure, axes = plt.subplots(len(runs), len(shapes), figsize=(4.2 * len(shapes), 3.4 * len(runs)), squeeze=False)
    for row, (label, cells) in enumerate(runs):
        rate = {(cell["engine"], cell["batch"], cell["length"]): cell["sequencesPerSecond"] for cell in cells}
        for column, (batch, length) in enumerate(shapes):
            axis = axes[row][column]
            present = [(name, title, colour) for name, title, colour in ENGINES if (name, batch, length) in rate]
            values = [rate[(name, batch, length)] for name, _, _ in present]
            bars = axis.bar(range(len(present)), values, color=[colour for _, _, colour in present])
            axis.bar_label(bars, labels=[f"{value:.0f}" for value in values], fontsize=7)
            axis.set_xticks(range(len(present)), [title for _, title, _ in present], rotation=45, ha="right", fontsize=8)
            axis.set_title(f"B={batch}, S={length}, {label}", fontsize=10)
            axis.set_ylabel("sequences/s" if column == 0 else "")
            axis.margins(y=0.12)
    figure.suptitle(f"{args.model}: sequences/s, best round median (higher is better)")
    figure.tight_layout()
    figure.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
