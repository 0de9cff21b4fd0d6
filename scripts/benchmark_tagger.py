"""Train (or reuse) the rnn_tagger configs and spaCy's own taggers on UD
English-EWT, then measure them all in one process on the test set: token
accuracy, sentence accuracy, accuracy on words unseen in training, tagging
speed through nlp.pipe, training speed through nlp.update (the same batches
for every system) and training wall time. Speeds are measured in interleaved rounds, every
pipeline in turn, so that ratios within a run are fair. The `_int8` rows are another row's
trained pipeline loaded with int8 weights (spacy_rnn.load_int8), not trained
themselves.

    python scripts/benchmark_tagger.py corpus training/benchmark metrics/benchmark_tagger.json

Models are selected on dev by `spacy train` (model-best); test is only read here.
"""
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import spacy
import torch
import typer
from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Corpus, Example

from spacy_rnn import load_int8

REPO = Path(__file__).resolve().parent.parent


@dataclass
class System:
    name: str
    config: str
    attr: str = "tag"
    overrides: Dict[str, str] = field(default_factory=dict)
    description: str = ""
    # The name of the system whose trained pipeline this row runs with int8 weights (not trained itself).
    int8_of: Optional[str] = None


def steps(n: int) -> Dict[str, str]:
    """Overrides for a training of n steps, its learning-rate schedule with it."""
    return {"training.max_steps": str(n), "training.optimizer.learn_rate.total_steps": str(n)}


def learn_rate(rate: float) -> Dict[str, str]:
    """The override for the schedule's initial learning rate."""
    return {"training.optimizer.learn_rate.initial_rate": str(rate)}

def with_seeds(system: System, seed_note: str = "") -> List[System]:
    """The system and its config trained with seeds 1 and 2 (rows NAME_seed1, NAME_seed2, averaged
    with it in the means table); seed_note names the config whose seed (0) the first one replaces."""
    rows = [system]
    for seed in (1, 2):
        note = f" ({seed_note}: seed 0)" if seed_note and seed == 1 else ""
        rows.append(System(f"{system.name}_seed{seed}", system.config, system.attr,
                           {**system.overrides, "system.seed": str(seed)}, f"{system.name} trained with seed {seed}{note}"))
    return rows


def int8_with_seeds(name: str, config: str) -> List[System]:
    """The int8 rows of a system and of its trainings with seeds 1 and 2 (with_seeds)."""
    return [System(f"{run}_int8", config, int8_of=run, description=f"{run} with int8 weights")
            for run in (name, f"{name}_seed1", f"{name}_seed2")]


# An XPOS config trained on UPOS instead: tags into Token.pos_, the best model chosen on pos_acc.
UPOS = {"components.tagger.token_attr": "pos", "training.score_weights.tag_acc": "null",
        "training.score_weights.pos_acc": "1.0"}


# The schedule the tagger configs shipped with before the regularized one became
# their default (issue 10, item 9): less dropout, 6000 steps.
PREVIOUS_SCHEDULE = {
    "components.tagger.model.encoder.dropout": "0.25", "components.tagger.model.encoder.word_dropout": "0.05",
    **steps(6000),
}

E = "components.tagger.model.encoder."  # the encoder's settings in the tagger configs
CHAR_FILTERS = E + "char_filters"

# The minGRU configs (tagger_mingru.cfg, tagger_mingru_fast.cfg, tagger_upos.cfg) before
# bf16_training = true became their setting (2026-12-04): every minGRU row trained before it was
# trained in float32, and its overrides say so, so that training it again reproduces it.
FLOAT32 = {E + "bf16_training": "false"}

# configs/tagger_mingru.cfg before 128 character filters were chosen on dev (64 before).
CHARS64 = {**FLOAT32, CHAR_FILTERS: "64"}

# configs/tagger_mingru.cfg before the short convolution and 128 character filters were chosen on
# dev (short_conv = true): rnn_mingru and the variants of it below were trained without them.
NO_CONV = {**CHARS64, E + "short_conv": "false"}

# configs/tagger_mingru.cfg before word dropout 0.2 was chosen on dev; the minGRU variants below
# were trained with it.
PREVIOUS_MINGRU = {**NO_CONV, E + "word_dropout": "0.1"}

SYSTEMS = [
    System("spacy_cnn", "configs/baselines/spacy_cnn_tagger.cfg", description="spaCy tagger, CNN tok2vec (efficiency)"),
    System("spacy_bilstm", "configs/baselines/spacy_bilstm_tagger.cfg", description="spaCy tagger, TorchBiLSTMEncoder.v1"),
    *with_seeds(System("rnn_lstm", "configs/tagger.cfg", description="configs/tagger.cfg (the LSTM; rnn_tagger's default until 2026-12-04): dropout 0.33, word dropout 0.1, 9000 steps"), seed_note="configs/tagger.cfg"),
    *with_seeds(System("rnn_lstm_chars128", "configs/tagger.cfg", overrides={CHAR_FILTERS: "128"},
                       description="rnn_lstm with 128 character CNN filters (configs/tagger.cfg: 64)")),
    System("rnn_lstm_6k", "configs/tagger.cfg", overrides=PREVIOUS_SCHEDULE,
           description="rnn_tagger, lstm, previous schedule: dropout 0.25, word dropout 0.05, 6000 steps"),
    System("rnn_gru", "configs/tagger.cfg", overrides={"components.tagger.model.encoder.cell": "gru"}, description="rnn_tagger, cell=gru"),
    System("rnn_rnn", "configs/tagger.cfg", overrides={"components.tagger.model.encoder.cell": "rnn"}, description="rnn_tagger, cell=rnn (tanh)"),
    *with_seeds(System("rnn_mingru_conv_chars128", "configs/tagger_mingru.cfg", overrides=FLOAT32,
           description="rnn_tagger, cell=mingru with output gates and a short convolution before each layer, 128 character filters, word dropout 0.2 "
                       "(configs/tagger_mingru.cfg, trained in float32: bf16_training = false)"), seed_note="configs/tagger_mingru.cfg"),
    *with_seeds(System("rnn_mingru_conv", "configs/tagger_mingru_fast.cfg", overrides=FLOAT32,
           description="configs/tagger_mingru_fast.cfg: rnn_mingru_conv_chars128 with 64 character filters, as the LSTM has "
                       "(configs/tagger_mingru.cfg: 128), trained in float32 (bf16_training = false)"), seed_note="configs/tagger_mingru_fast.cfg"),
    *with_seeds(System("rnn_mingru_bf16", "configs/tagger_mingru.cfg",
           description="configs/tagger_mingru.cfg as shipped: rnn_mingru_conv_chars128 with bf16_training = true (each layer's projection in bfloat16 in training)"),
                seed_note="configs/tagger_mingru.cfg"),
    *with_seeds(System("rnn_mingru_fast_bf16", "configs/tagger_mingru_fast.cfg",
           description="configs/tagger_mingru_fast.cfg as shipped: rnn_mingru_conv with bf16_training = true (each layer's projection in bfloat16 in training)"),
                seed_note="configs/tagger_mingru_fast.cfg"),
    *with_seeds(System("rnn_mingru", "configs/tagger_mingru.cfg", overrides=NO_CONV,
           description="rnn_tagger, cell=mingru with output gates, word dropout 0.2, no short convolution (the previous tagger_mingru.cfg)")),
    System("rnn_mingru_wdrop10", "configs/tagger_mingru.cfg", overrides=PREVIOUS_MINGRU,
           description="rnn_tagger, cell=mingru with output gates, word dropout 0.1 (the tagger_mingru.cfg before rnn_mingru's)"),
    System("rnn_mingru_drop40", "configs/tagger_mingru.cfg", overrides={**PREVIOUS_MINGRU, E + "dropout": "0.4"},
           description="rnn_mingru_wdrop10 with dropout 0.4"),
    System("rnn_mingru_12k", "configs/tagger_mingru.cfg",
           overrides={**PREVIOUS_MINGRU, **steps(12000)},
           description="rnn_mingru_wdrop10 for 12,000 steps"),
    System("rnn_mingru_avg", "configs/tagger_mingru.cfg", overrides={**NO_CONV, "training.optimizer.use_averages": "true"},
           description="rnn_mingru with parameter averaging (evaluated and saved with the averaged weights)"),
    System("rnn_mingru_ls10", "configs/tagger_mingru.cfg", overrides={**NO_CONV, "components.tagger.label_smoothing": "0.1"},
           description="rnn_mingru with label smoothing 0.1"),
    System("rnn_mingru_lr3", "configs/tagger_mingru.cfg", overrides={**NO_CONV, **learn_rate(0.003)},
           description="rnn_mingru with learning rate 0.003 (configs/tagger_mingru.cfg: 0.002)"),
    *with_seeds(System("rnn_mingru_lr4", "configs/tagger_mingru.cfg", overrides={**NO_CONV, **learn_rate(0.004)},
           description="rnn_mingru with learning rate 0.004")),
    *with_seeds(System("rnn_mingru_chars128", "configs/tagger_mingru.cfg", overrides={**NO_CONV, CHAR_FILTERS: "128"},
           description="rnn_mingru with 128 character CNN filters")),
    System("rnn_mingru_drop25", "configs/tagger_mingru.cfg", overrides={**NO_CONV, E + "dropout": "0.25"},
           description="rnn_mingru with dropout 0.25 (configs/tagger_mingru.cfg: 0.33)"),
    System("rnn_mingru_d3", "configs/tagger_mingru.cfg",
           overrides={**PREVIOUS_MINGRU, "components.tagger.model.encoder.depth": "3", "components.tagger.model.encoder.output_gate": "false"},
           description="rnn_tagger, cell=mingru without output gates, 3 layers, word dropout 0.1"),
    System("rnn_mingru_bare", "configs/tagger_mingru.cfg", overrides={**PREVIOUS_MINGRU, "components.tagger.model.encoder.output_gate": "false"},
           description="rnn_tagger, cell=mingru without output gates, word dropout 0.1"),
    System("rnn_minlstm", "configs/tagger_mingru.cfg", overrides={**PREVIOUS_MINGRU, "components.tagger.model.encoder.cell": "minlstm"},
           description="rnn_tagger, cell=minlstm with output gates"),
    System("rnn_minlstm_conv_chars128", "configs/tagger_mingru.cfg", overrides={**FLOAT32, "components.tagger.model.encoder.cell": "minlstm"},
           description="configs/tagger_mingru.cfg with the other linear cell, cell=minlstm"),
    System("rnn_mingru_ff", "configs/tagger_mingru.cfg", overrides={**PREVIOUS_MINGRU, "components.tagger.model.encoder.feed_forward": "true"},
           description="rnn_tagger, cell=mingru with output gates and feed-forward blocks"),
    System("rnn_lstm_int8", "configs/tagger.cfg", int8_of="rnn_lstm", description="rnn_lstm with int8 weights"),
    *int8_with_seeds("rnn_mingru_conv", "configs/tagger_mingru_fast.cfg"),
    *int8_with_seeds("rnn_mingru_conv_chars128", "configs/tagger_mingru.cfg"),
    *int8_with_seeds("rnn_mingru_bf16", "configs/tagger_mingru.cfg"),
    *int8_with_seeds("rnn_mingru_fast_bf16", "configs/tagger_mingru_fast.cfg"),
    System("rnn_mingru_int8", "configs/tagger_mingru.cfg", int8_of="rnn_mingru", description="rnn_mingru with int8 weights"),
    System("rnn_mingru_wdrop10_int8", "configs/tagger_mingru.cfg", int8_of="rnn_mingru_wdrop10", description="rnn_mingru_wdrop10 with int8 weights"),
    System("rnn_mingru_d3_int8", "configs/tagger_mingru.cfg", int8_of="rnn_mingru_d3", description="rnn_mingru_d3 with int8 weights"),
    System("rnn_mingru_ff_int8", "configs/tagger_mingru.cfg", int8_of="rnn_mingru_ff", description="rnn_mingru_ff with int8 weights"),
    System("rnn_minlstm_int8", "configs/tagger_mingru.cfg", int8_of="rnn_minlstm", description="rnn_minlstm with int8 weights"),
    System("rnn_minlstm_conv_chars128_int8", "configs/tagger_mingru.cfg", int8_of="rnn_minlstm_conv_chars128",
           description="rnn_minlstm_conv_chars128 with int8 weights"),
    # The LSTM on UPOS: configs/tagger_upos.cfg until the minGRU replaced it there (2026-12-04).
    *with_seeds(System("rnn_lstm_upos", "configs/tagger.cfg", attr="pos", overrides=UPOS,
                       description="configs/tagger.cfg on UPOS (the LSTM; configs/tagger_upos.cfg before 2026-12-04)")),
    System("rnn_lstm_upos_6k", "configs/tagger.cfg", attr="pos", overrides={**UPOS, **PREVIOUS_SCHEDULE},
           description="rnn_tagger, UPOS, previous schedule"),
    # rnn_tagger's default model on UPOS, what add_pipe("rnn_tagger", config={"token_attr": "pos"})
    # trains: configs/tagger_upos.cfg = configs/tagger_mingru.cfg with the UPOS overrides.
    *with_seeds(System("rnn_mingru_upos", "configs/tagger_upos.cfg", attr="pos", overrides=FLOAT32,
                       description="configs/tagger_mingru.cfg on UPOS (token_attr pos, selected on pos_acc: configs/tagger_upos.cfg)"),
                seed_note="configs/tagger_upos.cfg"),
]


def train(system: System, train_path: Path, dev_path: Path, out_dir: Path, extra: List[str]) -> float:
    """Run `spacy train` in a subprocess; record its wall time in out_dir/train_time.json."""
    cmd = [
        sys.executable, "-m", "spacy", "train", str(REPO / system.config),
        "--output", str(out_dir),
        "--paths.train", str(train_path),
        "--paths.dev", str(dev_path),
    ]
    for key, value in system.overrides.items():
        cmd += [f"--{key}", value]
    cmd += extra
    print("$", " ".join(cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    seconds = time.perf_counter() - start
    (out_dir / "train_time.json").write_text(json.dumps({"seconds": seconds, "command": cmd}))
    return seconds


def load_trained(system: System, root: Path) -> Tuple[Path, Language]:
    """The training folder under root whose model-best the system runs (an int8 row: its float
    system's) and that pipeline, loaded with int8 weights for an int8 row."""
    out_dir = root / (system.int8_of or system.name)
    return out_dir, load_int8(out_dir / "model-best") if system.int8_of else spacy.load(out_dir / "model-best")


def ensure_trained(system: System, train_path: Path, dev_path: Path, out_dir: Path, extra: List[str],
                   retrain: bool = False) -> None:
    """Train the system into out_dir unless a finished training is there (model-best and its wall time)."""
    if retrain or not (out_dir / "model-best").exists() or not (out_dir / "train_time.json").exists():
        train(system, train_path, dev_path, out_dir, extra)


def train_seconds(out_dir: Path) -> float:
    """The wall time `train` recorded for the pipeline in out_dir."""
    return json.loads((out_dir / "train_time.json").read_text())["seconds"]


def gold_sentences(nlp, path: Path, limit: int):
    """Reference sentences, with their gold tokenization."""
    examples = list(Corpus(path, gold_preproc=True, limit=0)(nlp))
    references = [eg.reference for eg in examples]
    return references[:limit] if limit else references


def bare_docs(nlp, references) -> List[Doc]:
    return [Doc(nlp.vocab, words=[t.text for t in ref], spaces=[bool(t.whitespace_) for t in ref]) for ref in references]


def predicted_tags(nlp, references, attr: str) -> List[List[str]]:
    """Each reference sentence's predicted `attr` (e.g. "tag"), from its bare words."""
    return [[getattr(token, attr + "_") for token in doc] for doc in nlp.pipe(bare_docs(nlp, references), batch_size=1000)]


def agreement(tags: List[List[str]], other: List[List[str]]) -> float:
    """The share of tokens tagged the same in two predictions of the same sentences."""
    pairs = [(a, b) for x, y in zip(tags, other) for a, b in zip(x, y)]
    return sum(a == b for a, b in pairs) / max(len(pairs), 1)


def accuracy(nlp, references, attr: str, train_words: set, tags: Optional[List[List[str]]] = None) -> Dict[str, float]:
    """Token, sentence and unseen-word accuracy of nlp (or of its `tags`, predicted_tags, if given)."""
    tags = predicted_tags(nlp, references, attr) if tags is None else tags
    tokens = correct = sentences = sentences_right = unseen = unseen_right = 0
    for pred, ref in zip(tags, references):
        right = [p == getattr(r, attr + "_") for p, r in zip(pred, ref)]
        tokens += len(right)
        correct += sum(right)
        sentences += 1
        sentences_right += all(right)
        for token, ok in zip(ref, right):
            if token.text not in train_words:
                unseen += 1
                unseen_right += ok
    return {
        "token_acc": correct / tokens,
        "sentence_acc": sentences_right / sentences,
        "unseen_acc": unseen_right / max(unseen, 1),
        "n_tokens": tokens,
        "n_sentences": sentences,
        "n_unseen": unseen,
    }


SPEED_ROUNDS = 8


def timed_pass(nlp, docs) -> float:
    """Seconds for one pass of the docs through nlp.pipe (batch size 1000)."""
    start = time.perf_counter()
    for _ in nlp.pipe(docs, batch_size=1000):
        pass
    return time.perf_counter() - start


def words_per_second(pipelines: Dict[str, object], references, rounds: int = SPEED_ROUNDS) -> Dict[str, List[float]]:
    """Words per second through nlp.pipe (batch size 1000) over the references, for each
    pipeline and each of `rounds` rounds; a round times one pass of every pipeline in turn.
    Interleaved and paired: this machine's speed drifts by a fifth or more within minutes (a
    shared host), and passes next to each other in time see the same machine, so the ratio of
    two pipelines is taken round by round (see `paired_ratio`)."""
    n_words = sum(len(ref) for ref in references)
    speeds: Dict[str, List[float]] = {name: [] for name in pipelines}
    for nlp in pipelines.values():
        list(nlp.pipe(bare_docs(nlp, references[:200]), batch_size=1000))  # warm up
    for _ in range(rounds):
        for name, nlp in pipelines.items():
            speeds[name].append(n_words / timed_pass(nlp, bare_docs(nlp, references)))
    return speeds


def paired_ratio(speeds: Optional[List[float]], baseline: Optional[List[float]]) -> Optional[float]:
    """The median over rounds of speed / baseline speed in the same round."""
    if not speeds or not baseline or len(speeds) != len(baseline):
        return None
    return statistics.median(a / b for a, b in zip(speeds, baseline))


# The torch ops that run matrix products on the CPU: float (nn.Linear, torch.mm/matmul, the output
# layer through spacy_rnn's TorchGemmOps) and int8 (dynamically quantized nn.Linear).
MATMUL_OPS = ("aten::addmm", "aten::mm", "aten::bmm", "aten::_addmm_activation", "quantized::linear_dynamic")


def matmul_share(nlp, references) -> float:
    """The share of nlp.pipe's wall time spent inside matrix products, from torch's profiler (one
    pass over the docs; the pipeline is warm from scoring its accuracy). It bounds what faster matrix products can give: with a
    share s, the pipeline can get at most 1 / (1 - s) times faster. The profiler's own cost adds to
    the rest, so the share is a slight underestimate."""
    from torch.profiler import ProfilerActivity, profile

    docs = bare_docs(nlp, references)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        seconds = timed_pass(nlp, docs)
    matmul_us = sum(event.self_cpu_time_total for event in prof.key_averages() if event.key in MATMUL_OPS)
    return matmul_us / 1e6 / seconds


TRAIN_SPEED_BATCH, TRAIN_SPEED_STEPS, TRAIN_SPEED_WARMUP = 32, 100, 5
# The training sentences training_words_per_second uses (the corpus is read only that far).
TRAIN_SPEED_SENTENCES = TRAIN_SPEED_BATCH * (TRAIN_SPEED_STEPS + TRAIN_SPEED_WARMUP)


def training_words_per_second(pipelines: Dict[str, object], examples: Dict[str, List[Example]], rounds: int = 10,
                              batch_size: int = TRAIN_SPEED_BATCH, steps: int = TRAIN_SPEED_STEPS,
                              warmup: int = TRAIN_SPEED_WARMUP) -> Dict[str, List[float]]:
    """Words per second through nlp.update (forward, backward and optimizer step, [training]
    dropout) over the same consecutive batches of training sentences for every pipeline: after
    `warmup` batches each, the `steps` batches in `rounds` interleaved slices (every pipeline
    runs its slice in turn); one speed per pipeline and slice. `examples`: the same sentences
    for each pipeline, read with its own vocab. Run it last: it changes the weights."""
    batches = {name: [examples[name][i:i + batch_size] for i in range(0, batch_size * (warmup + steps), batch_size)]
               for name in pipelines}
    optimizers = {name: nlp.resume_training() for name, nlp in pipelines.items()}
    speeds: Dict[str, List[float]] = {name: [] for name in pipelines}

    def run(name, nlp, chunk):
        dropout = nlp.config["training"]["dropout"]
        for batch in chunk:
            nlp.update(batch, sgd=optimizers[name], drop=dropout)

    for name, nlp in pipelines.items():
        run(name, nlp, batches[name][:warmup])
    size = -(-steps // rounds)
    for start in range(warmup, warmup + steps, size):
        for name, nlp in pipelines.items():
            chunk = batches[name][start:min(start + size, warmup + steps)]
            begin = time.perf_counter()
            run(name, nlp, chunk)
            speeds[name].append(sum(len(eg.reference) for batch in chunk for eg in batch) / (time.perf_counter() - begin))
    return speeds


def run_label() -> str:
    """The label of this run's rows (their "run" column): date and time (UTC), since a day may
    hold several runs whose speeds do not compare."""
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())


def machine_description() -> str:
    """The machine and settings of this run (the CPU's model name: ratios differ between kinds of CPU);
    glibc's malloc tunables too when set (they change prediction speed)."""
    from spacy_rnn.models.pytorch.cpu import cpu_flags, cpu_model

    tunables = os.environ.get("GLIBC_TUNABLES")
    # the instructions spacy-rnn's bf16 training and int8 kernels choose by (precision.py, int8.py)
    flags = [flag for flag in ("avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8") if flag in cpu_flags()]
    cpu = (cpu_model() or platform.processor() or "cpu") + (f" ({', '.join(flags)})" if flags else "")
    return (
        f"{platform.machine()}, {torch.get_num_threads()} torch threads, {cpu}; "
        f"torch {torch.__version__}, spaCy {spacy.__version__}" + (f"; GLIBC_TUNABLES={tunables}" if tunables else "")
    )


def speed_ratio_value(row: Dict, base: Dict, key: str) -> Optional[float]:
    """row's speed `key` against base's: the median of the per-round ratios when both have the
    rounds (`key`_rounds), else the ratio of the two speeds (older files); None without both."""
    paired = paired_ratio(row.get(f"{key}_rounds"), base.get(f"{key}_rounds"))
    if paired:
        return paired
    return row[key] / base[key] if row.get(key) and base.get(key) else None


def speed_ratio(row: Dict, base: Dict, key: str) -> str:
    """speed_ratio_value as the tables print it."""
    value = speed_ratio_value(row, base, key)
    return f"{value:.2f}x" if value else "–"


def render_markdown(data: Dict) -> str:
    """The markdown table of this script's JSON: {"machine": str, "systems": {name: {"description",
    "attr", "dev": {"token_acc"}, "test": {"token_acc", "sentence_acc", "unseen_acc"},
    "words_per_second", "train_words_per_second" (null for int8 rows; absent in older files),
    "train_seconds", "matmul_share" (null for spaCy's own pipelines; absent in older files),
    "words_per_second_rounds", "train_words_per_second_rounds" (per round; absent in older files),
    "int8_of" (the float row of an int8 row)}}}. The speeds are medians over rounds; ratios are
    medians of per-round ratios (speed_ratio): tagging against the spacy_cnn and rnn_lstm rows,
    training against rnn_lstm, int8 rows against their float row."""
    results = data["systems"]
    cnn = results.get("spacy_cnn", {})
    lstm = results.get("rnn_lstm", {})
    lines = [
        f"Machine: {data['machine']}" + (f"; measured {data['run']}" if data.get("run") else ""),
        "",
        "| system | attr | dev acc | test acc | test sentence acc | test unseen-word acc | words/s (nlp.pipe, test) "
        "| speed vs spacy_cnn | speed vs rnn_lstm | int8 vs float | matrix products (share of tagging time) "
        "| train words/s (nlp.update) | train speed vs rnn_lstm | train time |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, row in results.items():
        train_wps = row.get("train_words_per_second")
        share = row.get("matmul_share")
        lines.append(
            f"| {name} ({row['description']}) | {row['attr']} | {100 * row['dev']['token_acc']:.2f} | "
            f"{100 * row['test']['token_acc']:.2f} | {100 * row['test']['sentence_acc']:.2f} | "
            f"{100 * row['test']['unseen_acc']:.2f} | {row['words_per_second']:,.0f} | "
            f"{speed_ratio(row, cnn, 'words_per_second')} | {speed_ratio(row, lstm, 'words_per_second')} | "
            f"{speed_ratio(row, results[row['int8_of']], 'words_per_second') if row.get('int8_of') in results else '–'} | "
            f"{f'{100 * share:.0f}%' if share is not None else '–'} | "
            f"{f'{train_wps:,.0f}' if train_wps else '–'} | "
            f"{speed_ratio(row, lstm, 'train_words_per_second') if train_wps else '–'} | "
            f"{row['train_seconds'] / 60:.1f} min |"
        )
    agreeing = {name: row["test"]["agreement_with_float"] for name, row in results.items()
                if "agreement_with_float" in row["test"]}  # measured since 2026-12-04 23:20 UTC
    if agreeing:
        lines += ["", "int8 rows, test tokens tagged as their float row tags them: "
                  + ", ".join(f"{name} {100 * share:.2f}%" for name, share in agreeing.items())]
    seeds = seed_means(results)
    if seeds:
        lines += ["", "| config (rows averaged) | trainings | mean dev acc | mean test acc |", "|---|---:|---:|---:|"]
        for base, (names, dev, test) in seeds.items():
            lines.append(f"| {base} ({', '.join(names)}) | {len(names)} | {100 * dev:.2f} | {100 * test:.2f} |")
    return "\n".join(lines)


# A row of a config trained with another seed: NAME_seedN, or NAME_seedN_int8 (its int8 row, averaged
# with NAME_int8: the int8 rows form their own group, never the float one's).
SEED_ROW = re.compile(r"^(?P<base>.+)_seed\d+(?P<suffix>_int8)?$")


def seed_groups(results: Dict[str, Dict]) -> Dict[str, List[str]]:
    """For each row with rows NAME_seedN beside it (the same config trained with other seeds):
    NAME -> [NAME, NAME_seedN, ...]; likewise NAME_int8 -> [NAME_int8, NAME_seedN_int8, ...]."""
    groups: Dict[str, List[str]] = {}
    for name in results:
        match = SEED_ROW.match(name)
        base = match["base"] + (match["suffix"] or "") if match else None
        if base in results:
            groups.setdefault(base, [base]).append(name)
    return groups


def seed_means(results: Dict[str, Dict]) -> Dict[str, Tuple[List[str], float, float]]:
    """For each group of seed_groups: the rows, and their mean dev and test token accuracy."""
    return {base: (names, statistics.mean(results[n]["dev"]["token_acc"] for n in names),
                   statistics.mean(results[n]["test"]["token_acc"] for n in names))
            for base, names in seed_groups(results).items()}


def earlier_rows(output: Path) -> Dict[str, Dict]:
    """The rows of an earlier results file (none if there is none), each labelled with the run
    that measured it: its own "run", else the file's, else "earlier run" (for --keep)."""
    if not output.exists():
        return {}
    earlier = json.loads(output.read_text(encoding="utf8"))
    return {name: {**row, "run": row.get("run", earlier.get("run", "earlier run"))} for name, row in earlier["systems"].items()}


def ratio_in_run(name: str, row: Dict, rows: Dict[str, Dict], baseline: Callable[[str], str]) -> Optional[float]:
    """The speed ratio of row `name` against the baseline row of its run (`baseline(name)` names
    it): as recorded, or, in files written before rows recorded it (one run each), against the
    file's baseline row."""
    if "speed_ratio" in row:
        return row["speed_ratio"]
    baseline_wps = rows.get(baseline(name), {}).get("words_per_second")
    return row["words_per_second"] / baseline_wps if baseline_wps else None


def kept_rows(output: Path, measured: List[str], baseline: Optional[Callable[[str], str]] = None) -> Dict[str, Dict]:
    """The rows of an earlier results file for the systems not measured now (for --keep), each
    with that run's label (its date, or "earlier run") and, given a baseline, the speed ratio
    against the baseline row of its own run."""
    rows = earlier_rows(output)
    kept = {name: row for name, row in rows.items() if name not in measured}
    if baseline is None:
        return kept
    return {name: {**row, "speed_ratio": ratio_in_run(name, row, rows, baseline)} for name, row in kept.items()}


def in_system_order(results: Dict[str, Dict], names: List[str]) -> Dict[str, Dict]:
    """The rows in the order of the system `names` (rows of systems no longer listed last)."""
    order = {name: i for i, name in enumerate(names)}
    return dict(sorted(results.items(), key=lambda item: order.get(item[0], len(order))))


def report(output: Path, data: Dict, render) -> None:
    """Print render(data), the markdown, and write data to output (JSON). The JSON keeps a "table"
    copy of the markdown for older readers; scripts/render_readme.py renders from the data."""
    table = render(data)
    print(table)
    from spacy_rnn.files import atomic_output  # written beside, renamed into place: never a truncated file

    with atomic_output(output) as tmp:
        tmp.write_text(json.dumps({**data, "table": table}, indent=2), encoding="utf8")


def main(
    corpus: Path = typer.Argument(..., help="Folder with en_ewt-ud-{train,dev,test}.spacy"),
    training_dir: Path = typer.Argument(..., help="Where trained pipelines are (or go)"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    systems: str = typer.Option(",".join(s.name for s in SYSTEMS), help="Comma-separated system names"),
    retrain: bool = typer.Option(False, help="Retrain even if a trained pipeline exists"),
    limit: int = typer.Option(0, help="Evaluate on the first N test sentences only (smoke runs)"),
    max_steps: int = typer.Option(0, help="Override [training] max_steps (smoke runs)"),
    train_only: bool = typer.Option(False, help="Train what is missing, measure nothing"),
):
    wanted = systems.split(",")
    unknown = sorted(set(wanted) - {s.name for s in SYSTEMS})
    if unknown:
        raise typer.BadParameter(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(s.name for s in SYSTEMS)}")
    by_name = {s.name: s for s in SYSTEMS}
    chosen = [s for s in SYSTEMS if s.name in wanted]
    extra = ["--training.max_steps", str(max_steps)] if max_steps else []
    # An int8 row needs its float system trained, chosen or not.
    to_train = {by_name[s.int8_of or s.name].name: by_name[s.int8_of or s.name] for s in chosen}
    for system in to_train.values():
        out_dir = training_dir / system.name
        ensure_trained(system, corpus / "en_ewt-ud-train.spacy", corpus / "en_ewt-ud-dev.spacy", out_dir, extra, retrain)
    if train_only:
        return
    # All measurements happen here, in one process, after all training is done.
    run = run_label()
    nlp0 = spacy.blank("en")
    train_words = {t.text for ref in gold_sentences(nlp0, corpus / "en_ewt-ud-train.spacy", 0) for t in ref}
    results, pipelines, test_tags = {}, {}, {}
    test = None
    for system in chosen:
        out_dir, nlp = load_trained(system, training_dir)
        test = gold_sentences(nlp, corpus / "en_ewt-ud-test.spacy", limit)
        dev = gold_sentences(nlp, corpus / "en_ewt-ud-dev.spacy", limit)
        row = {"description": system.description, "attr": system.attr}
        if system.int8_of:
            row["int8_of"] = system.int8_of
        test_tags[system.name] = predicted_tags(nlp, test, system.attr)
        row["test"] = accuracy(nlp, test, system.attr, train_words, test_tags[system.name])
        row["dev"] = accuracy(nlp, dev, system.attr, train_words)
        row["train_seconds"] = train_seconds(out_dir)
        row["matmul_share"] = matmul_share(nlp, test) if system.name.startswith("rnn_") else None
        results[system.name], pipelines[system.name] = row, nlp
        print(f"measured accuracy of {system.name}", flush=True)
    # an int8 row's tags on test against its float row's (the aim: at least 99% the same)
    for name, row in results.items():
        if row.get("int8_of") in test_tags:
            row["test"]["agreement_with_float"] = agreement(test_tags[name], test_tags[row["int8_of"]])
    # Speeds last, every pipeline in the same rounds. The test docs are the same strings for all.
    for name, speeds in words_per_second(pipelines, test).items():
        results[name]["words_per_second"] = statistics.median(speeds)
        results[name]["words_per_second_rounds"] = speeds
    trainable = {name: nlp for name, nlp in pipelines.items() if not by_name[name].int8_of}  # int8: prediction only
    examples = {name: list(islice(Corpus(corpus / "en_ewt-ud-train.spacy", gold_preproc=True)(nlp), TRAIN_SPEED_SENTENCES))
                for name, nlp in trainable.items()}
    train_wps = training_words_per_second(trainable, examples)
    for name, row in results.items():
        row["train_words_per_second"] = statistics.median(train_wps[name]) if name in train_wps else None
        row["train_words_per_second_rounds"] = train_wps.get(name)
    report(output, {"machine": machine_description(), "run": run, "systems": results}, render_markdown)


if __name__ == "__main__":
    typer.run(main)
