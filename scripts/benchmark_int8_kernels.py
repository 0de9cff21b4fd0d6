"""Which kernels run int8 weights on the CPU: torch packs a dynamically quantized Linear's weights
for the quantized engine current when they are packed, FBGEMM for torch's default engine on x86
("x86"), or oneDNN. spacy-rnn packs for oneDNN where the CPU has AMX-INT8
(spacy_rnn/models/pytorch/int8.py). This measures why, and what it buys:

    python scripts/benchmark_int8_kernels.py corpus training/benchmark metrics/benchmark_int8_kernels.json

1. The products alone, at the fast minGRU tagger's shapes (4000 tokens; its first layer's parts
   240 -> 256, its second layer's 256 -> 256, its output layer 256 -> 50): float32 F.linear, and
   int8 (per-row weight scales, as spacy-rnn quantizes) packed for the default engine and for
   oneDNN; medians over 30 rounds of one call each, one thread. Once on the CPU as it is, and once per oneDNN
   instruction-set cap (ONEDNN_MAX_CPU_ISA, each in its own process) to see oneDNN on a CPU
   without AMX (AVX512-VNNI: Cascade Lake, Ice Lake), without VNNI (AVX512, AVX2). The cap does
   not reach FBGEMM, which runs on the CPU as it is in every row.
2. The trained pipeline (benchmark_tagger.py's CONFIG system, model-best) through nlp.pipe over
   EWT test as the tagger benchmark measures it (interleaved rounds; ratios are medians of
   per-round ratios to float): float, int8 packed for the default engine (spacy-rnn before it
   chose oneDNN), and int8 as shipped.
"""
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, Optional
from unittest import mock

import typer

CONFIG = "rnn_mingru_fast_bf16"
SHAPES = [(4000, 240, 256), (4000, 256, 256), (4000, 256, 50)]
ISA_CAPS = [None, "AVX512_CORE_VNNI", "AVX512_CORE", "AVX2"]


def time_products() -> Dict[str, Dict[str, float]]:
    """Milliseconds per product (median of 30) for each shape: float32, int8 packed for the default
    engine, int8 packed for oneDNN."""
    import torch
    from torch import nn

    from spacy_rnn.models.pytorch.int8 import quantize_linears

    torch.set_num_threads(1)
    default = torch.backends.quantized.engine

    def median_ms(layers: Dict[str, nn.Module], x) -> Dict[str, float]:
        """Each layer's median over 30 rounds, a round calling every layer once in turn: the calls
        side by side in time see the same state of the process's memory."""
        times = {name: [] for name in layers}
        with torch.no_grad():
            for layer in layers.values():
                layer(x)
            for _ in range(30):
                for name, layer in layers.items():
                    start = time.perf_counter()
                    layer(x)
                    times[name].append(time.perf_counter() - start)
        return {name: 1000 * sorted(t)[len(t) // 2] for name, t in times.items()}

    def int8_for(engine: str, layer: nn.Linear) -> nn.Module:
        copy = nn.Sequential(nn.Linear(layer.in_features, layer.out_features))
        copy[0].load_state_dict(layer.state_dict())
        with mock.patch("spacy_rnn.models.pytorch.int8.int8_engine", lambda: engine):
            quantize_linears(copy)
        return copy

    results = {}
    for rows, n_in, n_out in SHAPES:
        layer, x = nn.Linear(n_in, n_out), torch.randn(rows, n_in)
        results[f"{rows} x {n_in} -> {n_out}"] = median_ms(
            {"float32": layer, f"int8 {default}": int8_for(default, layer), "int8 onednn": int8_for("onednn", layer)}, x)
    return results


def products_per_cap() -> Dict[str, Dict]:
    """time_products in a process per ONEDNN_MAX_CPU_ISA cap (None: the CPU as it is)."""
    runs = {}
    for cap in ISA_CAPS:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if cap:
            env["ONEDNN_MAX_CPU_ISA"] = cap
        out = subprocess.run([sys.executable, __file__, "products"], env=env, check=True, capture_output=True, text=True)
        runs[cap or "the CPU's own"] = json.loads(out.stdout.strip().splitlines()[-1])
    return runs


def pipelines(path: Path) -> Dict[str, object]:
    """float, int8 packed for the default engine, int8 as shipped; each passed once over a few
    sentences while its packing applies (the output layer's int8 weights are packed on first use)."""
    import spacy
    import torch

    import spacy_rnn

    default = torch.backends.quantized.engine
    warm = ["A few words to pack the output layer's weights ."]
    loaded = {"float": spacy.load(path)}
    with mock.patch("spacy_rnn.models.pytorch.int8.int8_engine", lambda: default):
        loaded[f"int8, {default} packing"] = spacy_rnn.load_int8(path)
        list(loaded[f"int8, {default} packing"].pipe(warm))
    loaded["int8 (shipped)"] = spacy_rnn.load_int8(path)
    list(loaded["int8 (shipped)"].pipe(warm))
    return loaded


def render_markdown(data: Dict) -> str:
    """The tables of this script's JSON: {"machine", "run", "int8_flags", "engine", "products": {cap:
    {shape: {kernel: ms}}}, "pipeline", "variants": {name: {"words_per_second", "vs_float", "agreement"}}}."""
    lines = [f"Machine: {data['machine']}; CPU int8 flags: {', '.join(data['int8_flags']) or 'none'}; "
             f"shipped packing here: {data['engine']}; run {data['run']}", "",
             "| oneDNN instruction set | product (tokens x in -> out) | float32 ms | " +
             " | ".join(f"{k} ms" for k in list(next(iter(next(iter(data["products"].values())).values())))[1:]) + " |",
             "|---|---|---:|---:|---:|"]
    for cap, shapes in data["products"].items():
        for shape, row in shapes.items():
            lines.append(f"| {cap} | {shape} | " + " | ".join(f"{ms:.2f}" for ms in row.values()) + " |")
    lines += ["", f"Pipeline {data['pipeline']}, EWT test through nlp.pipe:", "",
              "| variant | tagging words/s | vs float | same tags as float |", "|---|---:|---:|---:|"]
    for name, row in data["variants"].items():
        lines.append(f"| {name} | {row['words_per_second']:,.0f} | {row['vs_float']:.2f}x | {100 * row['agreement']:.2f}% |")
    return "\n".join(lines)


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-test.spacy"),
    training_dir: Path = typer.Argument(..., help="Where benchmark_tagger.py's trained pipelines are"),
    output: Path = typer.Argument(..., help="Results JSON"),
    system: str = typer.Option(CONFIG, help="The benchmark_tagger.py system whose model-best to run"),
    rounds: Optional[int] = typer.Option(None, help="Speed rounds (default: the tagger benchmark's)"),
) -> None:
    import torch

    from benchmark_int8_backends import measure_variants
    from benchmark_tagger import gold_sentences, machine_description, report, run_label
    from spacy_rnn.models.pytorch.cpu import cpu_flags
    from spacy_rnn.models.pytorch.int8 import INT8_CPU_FLAGS, int8_engine

    products = products_per_cap()
    torch.set_num_threads(1)
    loaded = pipelines(training_dir / system / "model-best")
    references = gold_sentences(loaded["float"], corpus / "en_ewt-ud-test.spacy", 0)
    data = {"machine": machine_description(), "run": run_label(), "engine": int8_engine(),
            "int8_flags": [flag for flag in INT8_CPU_FLAGS if flag in cpu_flags()], "products": products,
            "pipeline": f"{system} (training_dir/{system}/model-best)",
            "variants": measure_variants(loaded, references, rounds)}
    report(output, data, render_markdown)


if __name__ == "__main__":
    if sys.argv[1:] == ["products"]:
        print(json.dumps(time_products()))
    else:
        typer.run(main)
