"""Which int8 library to run a trained minGRU tagger's recurrent layers with on the CPU: torch's
own `torch.ao.quantization` (what `spacy_rnn quantize` and `load_int8` ship; deprecated in torch
2.13) against the maintained `torchao`, eager and under `torch.compile`.

    pip install torchao   # not a dependency of spacy-rnn: only this script needs it
    python scripts/benchmark_int8_backends.py corpus training/benchmark metrics/benchmark_int8_backends.json

One process, one trained pipeline (benchmark_tagger.py's CONFIG system, model-best), loaded once
per variant:
- float: as trained;
- torch.ao: `spacy_rnn.load_int8` (per-channel int8 weights, fbgemm's dynamically quantized Linear);
- torchao eager: torchao's `Int8DynamicActivationInt8WeightConfig` (int8 weights and per-token
  int8 activations) on the same nn.Linear layers;
- torchao compiled: the same, each of those layers then compiled in place (`nn.Module.compile`,
  dynamic shapes: every batch has its own number of tokens); the seconds its first passes took
  (compilation) are recorded.
Every int8 variant splits each layer's projection into its parts first (as `quantize` does) and
runs the components' output layers with int8 weights (models.ops.Int8AffineOps), so they differ
only in the library that runs the recurrent layers' products. Speeds are words/s through nlp.pipe
over EWT test as in benchmark_tagger.py (interleaved rounds; ratios are medians of per-round
ratios to float); accuracy is tag accuracy on EWT test and agreement, the share of tokens tagged
as the float pipeline tags them.
"""
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import typer

CONFIG = "rnn_mingru_fast_bf16"


def torchao_pipeline(path: Path, compiled: bool):
    """The float pipeline at `path` with torchao int8 Linear layers (eager or compiled) and int8 output layers."""
    import spacy
    from torch import nn
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    from spacy_rnn.pipeline.quantize import own_modules, prepare_for_int8, quantize_output_layer

    nlp = spacy.load(path)
    for _, pipe in nlp.pipeline:
        for module in own_modules(pipe.model):
            prepare_for_int8(module)  # as spacy_rnn's quantize does, so only the library differs
            quantize_(module, Int8DynamicActivationInt8WeightConfig())
            if compiled:
                for layer in module.modules():
                    if isinstance(layer, nn.Linear):
                        layer.compile(dynamic=True)
        quantize_output_layer(pipe.model)
    return nlp


def variants(path: Path) -> Dict[str, Callable]:
    import spacy

    import spacy_rnn

    return {
        "float": lambda: spacy.load(path),
        "torch.ao (shipped)": lambda: spacy_rnn.load_int8(path),
        "torchao eager": lambda: torchao_pipeline(path, compiled=False),
        "torchao compiled": lambda: torchao_pipeline(path, compiled=True),
    }


def render_markdown(data: Dict) -> str:
    """The table of this script's JSON: {"machine", "pipeline", "variants": {name: {"words_per_second",
    "vs_float", "token_acc", "agreement", "first_pass_seconds"}}}."""
    lines = [f"Machine: {data['machine']}; pipeline {data['pipeline']}; run {data['run']}", "",
             "| int8 library | tagging words/s | vs float | test accuracy | same tags as float | first pass (s) |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, row in data["variants"].items():
        lines.append(f"| {name} | {row['words_per_second']:,.0f} | {row['vs_float']:.2f}x | {100 * row['token_acc']:.2f} | "
                     f"{100 * row['agreement']:.2f}% | {row['first_pass_seconds']:.1f} |")
    return "\n".join(lines)


def measure_variants(pipelines: Dict[str, object], references, rounds: Optional[int] = None) -> Dict[str, Dict]:
    """Each pipeline's tagging words/s over the references (benchmark_tagger's interleaved rounds),
    its ratio to the "float" pipeline's (median of per-round ratios), tag accuracy, and agreement:
    the share of tokens tagged as the float pipeline tags them."""
    import statistics

    from benchmark_tagger import SPEED_ROUNDS, accuracy, agreement, paired_ratio, predicted_tags, words_per_second

    tags = {name: predicted_tags(nlp, references, "tag") for name, nlp in pipelines.items()}
    speeds = words_per_second(pipelines, references, rounds or SPEED_ROUNDS)
    return {name: {"words_per_second": statistics.median(speeds[name]), "words_per_second_rounds": speeds[name],
                   "vs_float": paired_ratio(speeds[name], speeds["float"]),
                   "token_acc": accuracy(nlp, references, "tag", set(), tags[name])["token_acc"],
                   "agreement": agreement(tags[name], tags["float"])} for name, nlp in pipelines.items()}


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-test.spacy"),
    training_dir: Path = typer.Argument(..., help="Where benchmark_tagger.py's trained pipelines are"),
    output: Path = typer.Argument(..., help="Results JSON"),
    system: str = typer.Option(CONFIG, help="The benchmark_tagger.py system whose model-best to run"),
) -> None:
    from benchmark_tagger import bare_docs, gold_sentences, machine_description, report, run_label

    path = training_dir / system / "model-best"
    pipelines, first_pass = {}, {}
    references = None
    for name, load in variants(path).items():
        nlp = load()
        references = references or gold_sentences(nlp, corpus / "en_ewt-ud-test.spacy", 0)
        start = time.perf_counter()
        list(nlp.pipe(bare_docs(nlp, references), batch_size=1000))  # compiles, for the compiled variant
        first_pass[name] = time.perf_counter() - start
        pipelines[name] = nlp
    measured = measure_variants(pipelines, references)
    from importlib.metadata import version

    data = {"machine": f"{machine_description()}, torchao {version('torchao')}", "run": run_label(), "pipeline": f"{system} (training_dir/{system}/model-best)",
            "variants": {name: {**row, "first_pass_seconds": first_pass[name]} for name, row in measured.items()}}
    report(output, data, render_markdown)


if __name__ == "__main__":
    typer.run(main)
