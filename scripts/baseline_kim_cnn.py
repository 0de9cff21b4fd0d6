"""Kim's (2014) CNN without pretrained vectors ("CNN-rand", the model behind the published
TREC 91.2 and SST-2 82.7), trained and scored on the same train/dev data as
scripts/benchmark_textcat.py, so that rnn_textcat's dev figures have the published model's
beside them on the same split.

    python scripts/baseline_kim_cnn.py corpus metrics/baseline_kim_cnn.json              # trec, sst2 (phrases), seeds 0-2
    python scripts/baseline_kim_cnn.py corpus metrics/baseline_kim_cnn.json --datasets sst2 --keep   # one dataset, the other's rows kept
    python scripts/baseline_kim_cnn.py corpus /tmp/kim.json --datasets trec --seeds 0 --epochs 2 --limit 200   # smoke run

The paper's recipe (Kim 2014, "Convolutional Neural Networks for Sentence Classification",
and its reference code): 300-dimensional word vectors drawn uniformly from [-0.25, 0.25] and
trained; filters of widths 3, 4 and 5 with 100 maps each, ReLU, max over time; dropout 0.5 on
the 300 pooled features; softmax output whose weight vector per class is renormed to L2 norm at
most 3 after each step; Adadelta (rho 0.95, eps 1e-6); mini-batches of 50; 25 epochs, the epoch
with the best dev accuracy kept (the paper's early stopping on dev; as optimistic as
`spacy train`'s model-best, which benchmark_textcat.py reports). Each text is padded with 4
zero vectors on both sides (the widest filter less one), as the reference code does, and to the
length of the longest in its batch (the reference code pads all to the longest in the data), so a
shorter text's max also sees windows of padding alone, as there. Words are
the tokens of the .spacy files, lowercased (the reference code lowercases too); the vocabulary
is the training set's, and a dev word not in it gets one random, untrained vector (the
reference code draws a random vector for every word of the data, trained or not). Dev scores
come from spaCy's scorer (accuracy of the top label, `cats_macro_f`), as in benchmark_textcat.py.

Torch threads follow OMP_NUM_THREADS (set it to 1 beside another training).
"""
import json
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

import spacy
import torch
import typer
from spacy.scorer import Scorer
from spacy.tokens import DocBin
from spacy.training import Example
from torch import nn

from benchmark_tagger import machine_description, report, run_label

DATASETS = {
    # dataset: (training directory under corpus/, dev directory), the data of benchmark_textcat.py's shipped rows
    "trec": ("trec", "trec"),
    "sst2": ("sst2_phrases", "sst2"),
}
WIDTHS = (3, 4, 5)
PAD, UNKNOWN = 0, 1


class KimCNN(nn.Module):
    """Embedding -> parallel convolutions of several widths, ReLU, max over time -> dropout ->
    linear output (logits)."""

    def __init__(self, n_words: int, n_classes: int, width: int = 300, maps: int = 100,
                 widths: Sequence[int] = WIDTHS, dropout: float = 0.5):
        super().__init__()
        self.embed = nn.Embedding(n_words, width, padding_idx=PAD)
        nn.init.uniform_(self.embed.weight, -0.25, 0.25)
        with torch.no_grad():
            self.embed.weight[PAD].zero_()
        self.convs = nn.ModuleList(nn.Conv1d(width, maps, w) for w in widths)
        self.dropout = nn.Dropout(dropout)
        self.output = nn.Linear(maps * len(widths), n_classes)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """ids: (batch, length), already padded by max(widths) - 1 on both sides."""
        x = self.embed(ids).transpose(1, 2)  # (batch, width, length)
        pooled = [torch.relu(conv(x)).amax(dim=2) for conv in self.convs]
        return self.output(self.dropout(torch.cat(pooled, dim=1)))

    @torch.no_grad()
    def renorm_output(self, max_norm: float = 3.0) -> None:
        """Each class's weight vector rescaled to L2 norm at most max_norm (the paper's constraint)."""
        self.output.weight.copy_(torch.renorm(self.output.weight, p=2, dim=0, maxnorm=max_norm))


def read(path: Path, nlp, limit: int = 0) -> List[Tuple[List[str], str, spacy.tokens.Doc]]:
    """(lowercased words, gold label, doc) for each doc of a .spacy file."""
    docs = list(DocBin().from_disk(path).get_docs(nlp.vocab))
    docs = docs[:limit] if limit else docs
    return [([t.lower_ for t in doc], max(doc.cats, key=doc.cats.get), doc) for doc in docs]


def tensorize(texts: Sequence[List[str]], vocab: Dict[str, int], pad: int) -> torch.Tensor:
    """A (batch, length) tensor of word ids, `pad` PAD ids on both sides of the longest text."""
    longest = max((len(words) for words in texts), default=0)
    ids = torch.full((len(texts), longest + 2 * pad), PAD, dtype=torch.long)
    for row, words in enumerate(texts):
        ids[row, pad:pad + len(words)] = torch.tensor([vocab.get(w, UNKNOWN) for w in words], dtype=torch.long)
    return ids


@torch.no_grad()
def predict(model: KimCNN, texts: Sequence[List[str]], vocab: Dict[str, int], batch_size: int = 500) -> torch.Tensor:
    """Class probabilities, (n_texts, n_classes)."""
    model.eval()
    pad = max(WIDTHS) - 1
    out = [torch.softmax(model(tensorize(texts[i:i + batch_size], vocab, pad)), dim=1)
           for i in range(0, len(texts), batch_size)]
    return torch.cat(out) if out else torch.zeros((0, model.output.out_features))


def score(probs: torch.Tensor, labels: List[str], dev) -> Dict[str, float]:
    """Accuracy of the top label and spaCy's cats_macro_f, over docs whose cats are the probabilities."""
    examples = []
    for row, (_, _, doc) in zip(probs.tolist(), dev):
        predicted = doc.copy()
        predicted.cats = dict(zip(labels, row))
        examples.append(Example(predicted, doc))
    right = sum(max(eg.predicted.cats, key=eg.predicted.cats.get) == gold for eg, (_, gold, _) in zip(examples, dev))
    scores = Scorer.score_cats(examples, "cats", labels=labels, multi_label=False)
    return {"accuracy": right / len(dev), "macro_f": scores["cats_macro_f"]}


def train(train_set, dev, epochs: int, seed: int, batch_size: int = 50) -> Dict:
    """Kim's recipe; returns the best dev scores and the epoch they came at."""
    torch.manual_seed(seed)
    labels = sorted({gold for _, gold, _ in train_set} | {gold for _, gold, _ in dev})
    vocab = {"<pad>": PAD, "<unk>": UNKNOWN}
    for words, _, _ in train_set:
        for word in words:
            vocab.setdefault(word, len(vocab))
    model = KimCNN(len(vocab), len(labels))
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6)
    targets = torch.tensor([labels.index(gold) for _, gold, _ in train_set])
    pad = max(WIDTHS) - 1
    dev_words = [words for words, _, _ in dev]
    best = {"accuracy": -1.0}
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        model.train()
        for batch in torch.randperm(len(train_set)).split(batch_size):
            ids = tensorize([train_set[i][0] for i in batch.tolist()], vocab, pad)
            loss = nn.functional.cross_entropy(model(ids), targets[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            model.renorm_output()
        scores = score(predict(model, dev_words, vocab), labels, dev)
        print(f"seed {seed} epoch {epoch}: dev accuracy {scores['accuracy']:.4f}", flush=True)
        if scores["accuracy"] > best["accuracy"]:
            best = {**scores, "epoch": epoch}
    return {**best, "train_seconds": time.perf_counter() - start, "epochs": epochs, "n_train": len(train_set),
            "n_dev": len(dev), "n_words": len(vocab)}


def render_markdown(data: Dict) -> str:
    """The table of this script's JSON: {"machine", "run", "datasets": {NAME: {"train", "seeds":
    {SEED: {"accuracy", "macro_f", "epoch", "train_seconds", "run", ...}}}}} (older files: "run" per dataset)."""
    lines = [
        f"Machine: {data['machine']}",
        "",
        "| data | trained on | seed | dev accuracy | dev macro F | best epoch | train time | run |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, dataset in data["datasets"].items():
        runs = dataset["seeds"]
        for seed, row in runs.items():
            lines.append(f"| {name} | {dataset['train']} ({row['n_train']:,} texts) | {seed} | {100 * row['accuracy']:.2f} | "
                         f"{100 * row['macro_f']:.2f} | {row['epoch']} of {row['epochs']} | {row['train_seconds'] / 60:.1f} min "
                         f"| {row.get('run', dataset.get('run', data['run']))} |")
        mean = {key: sum(row[key] for row in runs.values()) / len(runs) for key in ("accuracy", "macro_f")}
        lines.append(f"| {name} | mean of {len(runs)} | | {100 * mean['accuracy']:.2f} | {100 * mean['macro_f']:.2f} | | | |")
    return "\n".join(lines)


def keep_earlier(earlier: Dict, now: Dict) -> Dict:
    """The datasets of both runs; a dataset trained now keeps its earlier seeds not trained now (each seed's
    row names its own run), so more seeds can be added to a mean without training the earlier ones again."""
    merged = {}
    for name in {**earlier, **now}:
        if name not in now:
            merged[name] = earlier[name]
            continue
        before = earlier.get(name, {"seeds": {}})
        old_run = before.get("run")
        seeds = {seed: {"run": old_run, **row} if old_run else row for seed, row in before["seeds"].items()}
        merged[name] = {**now[name], "seeds": dict(sorted({**seeds, **now[name]["seeds"]}.items(), key=lambda kv: int(kv[0])))}
    return merged


def main(
    corpus: Path = typer.Argument(..., help="Folder with trec/, sst2/ and sst2_phrases/ from scripts/convert_textcat.py"),
    output: Path = typer.Argument(..., help="JSON file for the results"),
    datasets: str = typer.Option(",".join(DATASETS), help="Comma-separated: trec, sst2"),
    seeds: str = typer.Option("0,1,2", help="Comma-separated seeds, one training each"),
    epochs: int = typer.Option(25, help="Epochs per training (the paper's 25)"),
    limit: int = typer.Option(0, help="Use the first N training and dev texts only (smoke runs)"),
    keep: bool = typer.Option(False, help="Keep the output file's rows of the datasets not trained now (with their run)"),
):
    nlp = spacy.blank("en")
    unknown = sorted(set(datasets.split(",")) - set(DATASETS))
    if unknown:
        raise typer.BadParameter(f"unknown dataset(s) {', '.join(unknown)}; choose from {', '.join(DATASETS)}")
    results = {}
    for name in datasets.split(","):
        train_dir, dev_dir = DATASETS[name]
        train_set = read(corpus / train_dir / "train.spacy", nlp, limit)
        dev = read(corpus / dev_dir / "dev.spacy", nlp, limit)
        runs = {seed: {**train(train_set, dev, epochs, int(seed)), "run": run_label()} for seed in seeds.split(",")}
        results[name] = {"train": f"{train_dir}/train.spacy", "seeds": runs}
    if keep and output.exists():
        results = keep_earlier(json.loads(output.read_text(encoding="utf8"))["datasets"], results)
    report(output, {"machine": machine_description(), "run": run_label(), "datasets": results},
           render_markdown)


if __name__ == "__main__":
    typer.run(main)
