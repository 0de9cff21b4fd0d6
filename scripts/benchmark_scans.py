"""How fast the linear-recurrence scans run against torch's packed nn.LSTM on
this machine: a 2-layer x 128 bidirectional encoder stack over batches of
32 sequences, training (forward + backward) and prediction tokens/s, for
several sequence lengths, one torch thread; the linear cells as a bare
stack, with output gates (configs/tagger_mingru.cfg) and, for mingru, with
feed-forward blocks; and
prediction with int8 Linear weights (spacy_rnn's quantize_modules, torch's
dynamic quantization). linear_scan's "auto" choice
(spacy_rnn/models/pytorch/linear_recurrence.py) follows these figures.

    python scripts/benchmark_scans.py metrics/benchmark_scans.json
"""
import copy
import json
import time
from pathlib import Path
from typing import Dict, List

import torch
import typer

from spacy_rnn.models.pytorch import LinearCellOptions, RecurrentEncoder
from spacy_rnn.pipeline.quantize import quantize_modules

SYSTEMS = [
    # name, cell, scan, feed-forward blocks, output gates
    ("lstm (packed nn.LSTM)", "lstm", None, False, False),
    ("mingru, loop", "mingru", "loop", False, False),
    ("mingru, loop, output gates", "mingru", "loop", False, True),
    ("mingru, loop, feed-forward", "mingru", "loop", True, False),
    ("mingru, chunked", "mingru", "chunked", False, False),
    ("minlstm, loop", "minlstm", "loop", False, False),
]
# also measured with int8 weights (prediction only)
INT8 = ("lstm (packed nn.LSTM)", "mingru, loop", "mingru, loop, output gates", "mingru, loop, feed-forward", "minlstm, loop")


def tokens_per_second(encoder, inputs, lengths, train: bool, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        if train:
            encoder.train()
            out = encoder(inputs, lengths)
            out.sum().backward()
        else:
            encoder.eval()
            with torch.no_grad():
                encoder(inputs, lengths)
        best = min(best, time.perf_counter() - start)
    return float(lengths.sum()) / best


def render_markdown(data: Dict) -> str:
    lengths = sorted({row["length"] for row in data["rows"]})
    lines = [f"{data['setup']}", "", "| cell, scan | " + " | ".join(f"train tok/s, T={n} | predict tok/s, T={n}" for n in lengths) + " |",
             "|---|" + "---:|" * (2 * len(lengths))]
    for name in dict.fromkeys(row["system"] for row in data["rows"]):
        cells = []
        for n in lengths:
            row = next(r for r in data["rows"] if r["system"] == name and r["length"] == n)
            cells += ["–" if row["train"] is None else f"{row['train']:,.0f}", f"{row['predict']:,.0f}"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(output: Path = typer.Argument(Path("metrics/benchmark_scans.json")),
         lengths: str = typer.Option("25,100,400"), repeats: int = typer.Option(5), batch: int = typer.Option(32)):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    rows: List[Dict] = []
    for length in [int(x) for x in lengths.split(",")]:
        # a realistic spread of lengths around T
        seq_lengths = torch.randint(max(1, length // 2), length + 1, (batch,), dtype=torch.int64)
        inputs = torch.randn(int(seq_lengths.sum()), 224)
        for name, cell, scan, feed_forward, output_gate in SYSTEMS:
            encoder = RecurrentEncoder(cell=cell, input_width=224, hidden_width=128, n_layers=2, bidirectional=True,
                                       dropout_prob=0.0,
                                       linear=LinearCellOptions(feed_forward=feed_forward, output_gate=output_gate))
            if scan:
                encoder.rnn.scan = scan
            row = {"system": name, "length": length,
                   "train": tokens_per_second(encoder, inputs, seq_lengths, True, repeats),
                   "predict": tokens_per_second(encoder, inputs, seq_lengths, False, repeats)}
            rows.append(row)
            print(row, flush=True)
            if name in INT8:
                quantized = copy.deepcopy(encoder)
                quantize_modules([quantized])
                row = {"system": f"{name}, int8", "length": length, "train": None,
                       "predict": tokens_per_second(quantized, inputs, seq_lengths, False, repeats)}
                rows.append(row)
                print(row, flush=True)
    data = {"setup": f"2 x 128 bidirectional, batch {batch}, lengths uniform in [T/2, T], 1 torch thread, torch {torch.__version__}",
            "rows": rows}
    print(render_markdown(data))
    from spacy_rnn.files import atomic_output

    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps({**data, "table": render_markdown(data)}, indent=2))


if __name__ == "__main__":
    typer.run(main)
