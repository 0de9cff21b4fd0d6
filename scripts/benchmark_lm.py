"""Benchmark the rnn_lm on Penn Treebank: train several systems (cells and
recipes) under the same budget and schedule, then report PTB valid/test
perplexity, WikiText-2 valid/test perplexity with the out-of-vocabulary rate
(an out-of-domain figure: PTB's lower-cased 10k vocabulary, numbers as N),
training tokens/s and wall time. Prints one markdown table, writes JSON.

    python scripts/benchmark_lm.py                      # the README table (about 90 minutes)
    python scripts/benchmark_lm.py --system lstm --max-minutes 0.2 --limit-tokens 20000   # smoke test

A system is NAME or NAME:key=value,key=value with LMConfig fields, e.g.
`rnn:cell=rnn,lr=5`; NAME alone uses NAME as the cell. Every system shares
the options given here (depth, width, epochs, schedule, budget, seed); a
system's own keys override them. `--lanes 2` trains two systems at a time,
each in its own process with `--threads` torch threads, which on a 2-core
machine is the fair way to run them side by side; each process logs to
OUT_DIR/NAME/log.txt.

`--valid-only` skips the test sets, for choosing settings on PTB valid.

Reference points (PTB test perplexity): KN5 141.2, RNN LM 124.7 (Mikolov
2012), 2x200 LSTM 114.5 (Zaremba et al. 2014, "small", 13 epochs).
"""
import json
import multiprocessing
import platform
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import typer

from spacy_rnn.training.lm import LMConfig
from spacy_rnn.training.lm_pipeline import evaluate_pipeline, run_training

DATA = Path(__file__).parent.parent.parent / "shared" / "data"

# The README table. lr 5 for the vanilla rnn was chosen on PTB valid (one
# epoch on 400k tokens, lr in 1, 2.5, 5, 10); at 20 it diverges.
DEFAULT_SYSTEMS = [
    "gru",
    "lstm",
    "rnn:cell=rnn,lr=5",
    "lstm_tied:cell=lstm,tie_weights=true",
    "lstm_tied_dropout:cell=lstm,tie_weights=true,embed_dropout=0.1,dropout=0.2,output_dropout=0.2",
]


def parse_system(spec: str) -> Tuple[str, Dict]:
    """'name:key=value,...' -> (name, {key: value}) with LMConfig's types."""
    name, _, settings = spec.partition(":")
    name = name.strip()
    if not name:
        raise typer.BadParameter(f"system {spec!r} has no name")
    types = {f.name: f.type for f in fields(LMConfig)}
    overrides: Dict = {} if settings else {"cell": name}
    for item in filter(None, (part.strip() for part in settings.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or key not in types:
            raise typer.BadParameter(f"system {spec!r}: {item!r} is not key=value with a key of {sorted(types)}")
        kind = types[key]
        if kind is bool:
            overrides[key] = value.strip().lower() in ("1", "true", "yes")
        elif kind in (int, float):
            overrides[key] = kind(value)
        else:
            overrides[key] = value.strip()
    return name, overrides


def run_system(job: Dict) -> Dict:
    """Train and evaluate one system; runs in its own process with --lanes."""
    name, options = job["name"], job["options"]
    if job.get("log"):
        log_path = Path(job["log"])
        log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout = sys.stderr = open(log_path, "w", buffering=1, encoding="utf8")
    if job.get("threads"):
        torch.set_num_threads(job["threads"])
    config = LMConfig(**job["config"])
    print(f"== {name}: {json.dumps(asdict(config))}")
    out_dir = Path(options["out_dir"]) / name
    tic = time.perf_counter()
    summary = run_training(
        Path(options["ptb_dir"]) / "ptb.train.txt", Path(options["ptb_dir"]) / "ptb.valid.txt", out_dir, config,
        resume=options["resume"], max_minutes=options["max_minutes"], limit_tokens=options["limit_tokens"],
        progress=options["progress"],
    )
    train_wall = time.perf_counter() - tic
    files = {"ptb_valid": Path(options["ptb_dir"]) / "ptb.valid.txt"}
    if not options["valid_only"]:
        files.update({
            "ptb_test": Path(options["ptb_dir"]) / "ptb.test.txt",
            "wt2_valid": Path(options["wikitext_dir"]) / "valid.txt",
            "wt2_test": Path(options["wikitext_dir"]) / "test.txt",
        })
    tic = time.perf_counter()
    evaluated = evaluate_pipeline(
        out_dir / "model-best", list(files.values()), batch_size=options["eval_batch_size"], bptt=config.bptt
    )
    row = {
        "system": name,
        "cell": config.cell,
        "epochs": summary["epochs_done"] + (0.5 if summary["stopped_by_budget"] else 0.0),
        "train_tokens": summary["train_tokens"],
        "tokens_per_second": summary["tokens_per_second"],
        "train_wall_seconds": round(train_wall, 1),
        "eval_wall_seconds": round(time.perf_counter() - tic, 1),
        "torch_threads": torch.get_num_threads(),
        "config": summary["config"],
        "history": summary["history"],
    }
    for key, path in files.items():
        result = evaluated[str(path)]
        if "error" in result:  # evaluate_pipeline reports a file it could not score
            raise SystemExit(f"{name}: {result['error']}")
        row[f"{key}_ppl"] = round(result["perplexity"], 2)
        row[f"{key}_oov"] = round(result["oov_rate"], 4)
    print(json.dumps({k: v for k, v in row.items() if k not in ("config", "history")}))
    return row


def describe(config: Dict, base: Dict) -> str:
    changed = [f"{k}={v}" for k, v in config.items() if base.get(k) != v]
    return ", ".join(changed) if changed else "shared recipe"


def make_table(rows: List[Dict], base: Dict) -> List[str]:
    with_test = all("ptb_test_ppl" in r for r in rows)
    head = "| system | settings beyond the shared recipe | epochs | PTB valid |"
    rule = "|---|---|---:|---:|"
    if with_test:
        head += " PTB test | WT2 valid (OOV) | WT2 test (OOV) |"
        rule += "---:|---:|---:|"
    table = [head + " tokens/s | train wall |", rule + "---:|---:|"]
    for r in rows:
        epochs_text = f"{r['epochs']:g}" if r["epochs"] == int(r["epochs"]) else f"<{int(r['epochs']) + 1}"
        line = f"| {r['system']} | {describe(r['config'], base)} | {epochs_text} | {r['ptb_valid_ppl']:.1f} |"
        if with_test:
            line += (
                f" {r['ptb_test_ppl']:.1f} | {r['wt2_valid_ppl']:.1f} ({100 * r['wt2_valid_oov']:.1f}%) |"
                f" {r['wt2_test_ppl']:.1f} ({100 * r['wt2_test_oov']:.1f}%) |"
            )
        table.append(line + f" {r['tokens_per_second']:,.0f} | {r['train_wall_seconds'] / 60:.1f} min |")
    return table


def curve_table(rows: List[Dict]) -> List[str]:
    """PTB valid perplexity after each epoch (as validated during training)."""
    n = max(len(r["history"]) for r in rows)
    table = ["| system | " + " | ".join(f"epoch {i + 1}" for i in range(n)) + " |", "|---|" + "---:|" * n]
    for r in rows:
        cells = [f"{h['valid_perplexity']:.1f}" for h in r["history"]] + [""] * (n - len(r["history"]))
        table.append(f"| {r['system']} | " + " | ".join(cells) + " |")
    return table


def render_markdown(data: Dict) -> str:
    """The tables of this script's JSON: {"shared_recipe": {LMConfig field: value}, "results":
    [{"system", "config", "epochs", "ptb_valid_ppl", "tokens_per_second", "train_wall_seconds",
    "history": [{"valid_perplexity"}], and with the test sets "ptb_test_ppl", "wt2_valid_ppl",
    "wt2_valid_oov", "wt2_test_ppl", "wt2_test_oov"}]}. The results table, then, when a system
    ran more than one epoch, PTB valid perplexity after each epoch."""
    rows = data["results"]
    lines = make_table(rows, data["shared_recipe"])
    if any(len(r.get("history", [])) > 1 for r in rows):
        lines += ["", "PTB valid perplexity after each epoch:", ""] + curve_table(rows)
    return "\n".join(lines)


def main(
    system: Optional[List[str]] = typer.Option(None, help="NAME or NAME:key=value,...; repeat for several (default: the README table)"),
    lanes: int = typer.Option(2, help="Systems trained at the same time, each in its own process"),
    threads: int = typer.Option(1, help="Torch threads per lane"),
    max_minutes: float = typer.Option(30.0, help="Training wall-time budget per system"),
    limit_tokens: Optional[int] = typer.Option(None, help="First N training tokens only (and N/10 validation tokens)"),
    valid_only: bool = typer.Option(False, "--valid-only", help="Evaluate on PTB valid only (for choosing settings)"),
    ptb_dir: Path = typer.Option(DATA / "ptb_lm", help="ptb.{train,valid,test}.txt"),
    wikitext_dir: Path = typer.Option(DATA / "wikitext2", help="WikiText-2 valid.txt and test.txt"),
    out_dir: Path = typer.Option(Path("training/lm_benchmark"), help="Models, checkpoints and logs"),
    output: Path = typer.Option(Path("metrics/lm_benchmark.json"), help="JSON results"),
    depth: int = typer.Option(2),
    width: int = typer.Option(200),
    embed_width: int = typer.Option(200),
    lr: float = typer.Option(20.0),
    clip: float = typer.Option(0.25),
    decay_start: int = typer.Option(3, help="Halve lr every epoch from this one"),
    decay_factor: float = typer.Option(0.5),
    plateau_factor: float = typer.Option(4.0),
    epochs: int = typer.Option(6, help="6 epochs of the 2x200 models fit in 30 minutes on one thread"),
    batch_size: int = typer.Option(20),
    bptt: int = typer.Option(20),
    seed: int = typer.Option(0),
    eval_batch_size: int = typer.Option(1, help="Columns for the final evaluation; 1 is exact"),
    resume: bool = typer.Option(False, "--resume", help="Continue each system from its checkpoint"),
    progress: bool = typer.Option(False, "--progress/--no-progress"),
    report: Optional[Path] = typer.Option(None, help="Print the tables of an earlier run's JSON and stop"),
) -> None:
    if report is not None:
        saved = json.loads(report.read_text())
        typer.echo(f"{saved['command']}  ({saved['lanes']} lanes x {saved['threads_per_lane']} torch thread(s), "
                   f"{saved['machine']['cpus']} CPUs, torch {saved['machine']['torch']}, "
                   f"{saved['total_wall_seconds'] / 60:.0f} min in all)\n")
        typer.echo(render_markdown(saved))
        return
    base = asdict(LMConfig(
        depth=depth, width=width, embed_width=embed_width, lr=lr, clip=clip, decay_start=decay_start,
        decay_factor=decay_factor, plateau_factor=plateau_factor, epochs=epochs, batch_size=batch_size,
        bptt=bptt, seed=seed,
    ))
    options = {
        "out_dir": str(out_dir), "ptb_dir": str(ptb_dir), "wikitext_dir": str(wikitext_dir),
        "max_minutes": max_minutes, "limit_tokens": limit_tokens, "valid_only": valid_only,
        "eval_batch_size": eval_batch_size, "resume": resume, "progress": progress,
    }
    jobs = []
    for spec in system or DEFAULT_SYSTEMS:
        name, overrides = parse_system(spec)
        config = asdict(LMConfig(**{**base, **overrides}))  # validates each system before any training
        jobs.append({"name": name, "config": config, "options": options})
    if len({job["name"] for job in jobs}) != len(jobs):
        raise typer.BadParameter("system names must differ")
    started = time.perf_counter()
    if lanes > 1 and len(jobs) > 1:
        for job in jobs:
            job.update(log=str(out_dir / job["name"] / "log.txt"), threads=threads)
            typer.echo(f"{job['name']}: logging to {job['log']}")
        context = multiprocessing.get_context("spawn")
        with context.Pool(processes=min(lanes, len(jobs)), maxtasksperchild=1) as pool:
            rows = []
            for row in pool.imap(run_system, jobs):
                typer.echo(f"done: {row['system']} PTB valid {row['ptb_valid_ppl']:.2f}")
                rows.append(row)
    else:
        rows = [run_system({**job, "threads": threads}) for job in jobs]
    output.parent.mkdir(parents=True, exist_ok=True)
    saved = {
        "command": " ".join(sys.argv),
        "shared_recipe": base,
        "lanes": lanes,
        "threads_per_lane": threads,
        "max_minutes": max_minutes,
        "limit_tokens": limit_tokens,
        "total_wall_seconds": round(time.perf_counter() - started, 1),
        "machine": {"cpus": multiprocessing.cpu_count(), "torch": torch.__version__, "platform": platform.platform()},
        "results": rows,
        "table": make_table(rows, base),  # for older readers; scripts/render_readme.py renders from "results"
    }
    typer.echo(render_markdown(saved))
    from spacy_rnn.files import atomic_output  # written beside, renamed into place: never a truncated file

    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps(saved, indent=2), encoding="utf8")
    typer.echo(f"wrote {output}")


if __name__ == "__main__":
    typer.run(main)
