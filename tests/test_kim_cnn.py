"""scripts/baseline_kim_cnn.py: the published CNN baseline beside rnn_textcat (its recipe's pieces)."""
import json

import pytest
import spacy
import torch
from spacy.tokens import DocBin

from .test_readme import render_readme

kim = render_readme.load_script("baseline_kim_cnn")


def test_padding_on_both_sides_and_unknown_words():
    ids = kim.tensorize([["a", "b"], ["c"]], {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}, pad=4)
    assert ids.shape == (2, 2 + 8)
    assert ids[0].tolist() == [0] * 4 + [2, 3] + [0] * 4
    assert ids[1].tolist() == [0] * 4 + [1] + [0] * 5  # an unseen word is <unk>, the rest padding


def test_padding_vector_stays_zero_through_training():
    torch.manual_seed(0)
    model = kim.KimCNN(n_words=5, n_classes=2, width=6, maps=3)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0, rho=0.95, eps=1e-6)
    ids = torch.tensor([[0, 0, 0, 0, 2, 3, 4, 0, 0, 0, 0]])
    for _ in range(3):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(ids), torch.tensor([1])).backward()
        optimizer.step()
    assert model.embed.weight[kim.PAD].abs().sum() == 0
    assert model.embed.weight.grad[2:].abs().sum() > 0  # the words did learn


def test_renorm_caps_each_class_vector_at_three():
    model = kim.KimCNN(n_words=5, n_classes=3, width=4, maps=2)
    with torch.no_grad():
        model.output.weight.mul_(100)
        model.output.weight[2].fill_(0.01)
    small = model.output.weight[2].clone()
    model.renorm_output()
    norms = model.output.weight.detach().norm(dim=1)
    assert torch.all(norms <= 3.0 + 1e-5) and norms[0] == pytest.approx(3.0, abs=1e-4)
    assert torch.equal(model.output.weight[2].detach(), small.detach())  # under the cap: unchanged


def test_trains_on_separable_questions_and_writes_the_table(tmp_path):
    nlp = spacy.blank("en")
    texts = {"LOC": "where is the {} ?", "NUM": "how many {} are there ?"}
    for directory, n in (("trec", 60), ("trec_dev", 10)):
        docs = []
        for i in range(n):
            for label, template in texts.items():
                doc = nlp.make_doc(template.format(f"thing{i % 7}"))
                doc.cats = {name: float(name == label) for name in texts}
                docs.append(doc)
        (tmp_path / "trec").mkdir(exist_ok=True)
        DocBin(docs=docs, store_user_data=True).to_disk(tmp_path / "trec" / ("train.spacy" if directory == "trec" else "dev.spacy"))
    output = tmp_path / "kim.json"
    kim.main(tmp_path, output, datasets="trec", seeds="0", epochs=3, limit=0, keep=False)
    data = json.loads(output.read_text())
    row = data["datasets"]["trec"]["seeds"]["0"]
    assert row["accuracy"] == 1.0 and row["macro_f"] == 1.0
    assert row["n_train"] == 120 and row["n_dev"] == 20
    assert "| trec | mean of 1 | | 100.00 | 100.00 | | | |" in data["table"]
    # --keep: a dataset not trained now keeps its rows and run; one trained now keeps its other seeds
    # (each row naming its own run, an older file's per-dataset run included) and replaces the seeds trained now
    data["datasets"]["sst2"] = {**data["datasets"]["trec"], "run": "2026-01-01"}
    data["datasets"]["trec"]["seeds"]["2"] = {**row, "accuracy": 0.123, "run": "2026-01-02"}
    data["datasets"]["trec"]["seeds"]["0"].pop("run")
    data["datasets"]["trec"]["run"] = "2026-01-03"
    output.write_text(json.dumps(data))
    kim.main(tmp_path, output, datasets="trec", seeds="2,1", epochs=1, limit=0, keep=True)
    kept = json.loads(output.read_text())
    assert list(kept["datasets"]) == ["trec", "sst2"] and kept["datasets"]["sst2"]["run"] == "2026-01-01"
    seeds = kept["datasets"]["trec"]["seeds"]
    assert list(seeds) == ["0", "1", "2"]
    assert seeds["0"] == {**row, "run": "2026-01-03"} and seeds["2"]["accuracy"] != 0.123
    assert seeds["1"]["run"] == seeds["2"]["run"] == kept["run"]
    assert "| trec | mean of 3 |" in kept["table"] and "2026-01-03 |" in kept["table"]


def test_unknown_dataset_is_refused(tmp_path):
    import typer

    with pytest.raises(typer.BadParameter, match="sst5"):
        kim.main(tmp_path, tmp_path / "out.json", datasets="trec,sst5", seeds="0", epochs=1, limit=0, keep=False)
