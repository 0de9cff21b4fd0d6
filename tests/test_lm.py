"""The recurrent language model (issue 6): the torch model, TBPTT training
with resume, the rnn_lm component, generation and the command line."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from thinc.api import fix_random_seed

from spacy_rnn import generate
from spacy_rnn.training.lm import (
    LMConfig,
    batchify,
    evaluate_ids,
    evaluate_words,
    get_chunk,
    stream_words,
    train_lm,
)
from spacy_rnn.training.lm_pipeline import build_pipeline, evaluate_pipeline, language_model_from_pipeline, run_training
from spacy_rnn.models.pytorch import RNNLanguageModel, SequenceLogProbs, detach_state, sample_words
from spacy_rnn.models.lm_vocab import EOS, EOS_ID, UNK, UNK_ID, Vocabulary

SENTENCES = [
    "the cat sat on the mat",
    "the dog sat on the log",
    "a cat and a dog met on the mat",
    "it rained 3 days in N places",
]
TINY = dict(depth=1, width=24, embed_width=24, batch_size=2, bptt=8, optimizer="adam", lr=0.01, clip=1.0,
            decay_start=100, plateau_factor=1.0, seed=0)


@pytest.fixture(autouse=True)
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_stream(repeat=20):
    return stream_words([s.split() for s in SENTENCES] * repeat)


def make_lm(cell="lstm", seed=0, **kwargs):
    torch.manual_seed(seed)
    settings = dict(vocab_size=12, embed_width=6, hidden_width=6, n_layers=2, cell=cell)
    settings.update(kwargs)
    return RNNLanguageModel(**settings)


# The torch model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_state_carry_over_is_exact(cell):
    """Two chunks with the state carried over equal their concatenation (eval mode)."""
    model = make_lm(cell, dropout_prob=0.5, embed_dropout_prob=0.5, output_dropout_prob=0.5).eval()
    ids = torch.randint(0, 12, (3, 11), generator=torch.Generator().manual_seed(1))
    whole, whole_state = model(ids)
    first, state = model(ids[:, :4], model.init_state(3))
    second, last_state = model(ids[:, 4:], detach_state(state))
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, rtol=0, atol=1e-6)
    for a, b in zip(*(s if isinstance(s, tuple) else (s,) for s in (last_state, whole_state))):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_detached_state_cuts_the_graph():
    model = make_lm("lstm").train()
    _, state = model(torch.randint(0, 12, (2, 5)))
    assert all(s.grad_fn is not None for s in state)
    assert all(s.grad_fn is None and not s.requires_grad for s in detach_state(state))


def test_shapes_and_unused_rows():
    model = make_lm("gru", vocab_size=12).eval()
    model.n_words.fill_(7)
    logits, state = model(torch.randint(0, 7, (2, 5)))
    assert logits.shape == (2, 5, 12) and state.shape == (2, 2, 6)
    probs = torch.softmax(logits, dim=-1)
    assert torch.all(probs[..., 7:] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones(2, 5))


def test_tied_weights_need_equal_widths():
    with pytest.raises(ValueError, match="tie_weights"):
        make_lm(embed_width=8, hidden_width=6, tie_weights=True)
    model = make_lm(tie_weights=True)
    assert model.decoder.weight is model.embed.weight
    with pytest.raises(ValueError, match="cell"):
        make_lm("transformer")
    with pytest.raises(ValueError, match="tie_weights"):
        LMConfig(width=10, embed_width=12, tie_weights=True)


def test_sequence_scores_do_not_depend_on_chunks_or_batch():
    model = make_lm("lstm")
    ids = torch.randint(2, 12, (30,), generator=torch.Generator().manual_seed(2))
    lengths = torch.tensor([13, 0, 17])
    whole = SequenceLogProbs(model, start_id=EOS_ID, chunk_len=1000).eval()(ids, lengths)
    chunked = SequenceLogProbs(model, start_id=EOS_ID, chunk_len=4).eval()(ids, lengths)
    torch.testing.assert_close(chunked, whole, rtol=0, atol=1e-5)
    alone = SequenceLogProbs(model, start_id=EOS_ID).eval()(ids[13:], torch.tensor([17]))
    torch.testing.assert_close(whole[13:], alone, rtol=0, atol=0)
    # In training the sequences are padded into one batch: same values.
    batched = SequenceLogProbs(model, start_id=EOS_ID).train()(ids, lengths)
    torch.testing.assert_close(batched, whole, rtol=0, atol=1e-5)


# Vocabulary and corpus stream


def test_unknown_words_map_to_unk():
    vocab = Vocabulary.from_counts({"the": 3, "cat": 2, "N": 2, "rare": 1}, max_size=5, min_freq=2)
    assert vocab.words == [UNK, EOS, "the", "N", "cat"]
    assert vocab.encode(["The", "CAT", "dog", "1,000", "3.5%", "N", EOS, UNK, ""]) == [
        2, 4, UNK_ID, 3, 3, 3, EOS_ID, UNK_ID, UNK_ID
    ]
    cased = Vocabulary([UNK, EOS, "The"], lowercase=False, number_token=None)
    assert cased.encode(["The", "the", "3"]) == [2, UNK_ID, UNK_ID]


def test_batchify_columns_and_chunks():
    data = batchify(list(range(23)), 4)  # 5 steps per column, 3 tokens dropped
    assert data.tolist()[1] == [5, 6, 7, 8, 9]
    inputs, targets = get_chunk(data, 3, 3)
    assert inputs.tolist()[0] == [3] and targets.tolist()[0] == [4]
    with pytest.raises(ValueError):
        batchify([1, 2, 3], 4)


# Training


def test_tiny_corpus_overfits():
    words = tiny_stream()
    model, vocab, result = train_lm(words, words, LMConfig(epochs=6, **TINY), progress=False, log=lambda s: None)
    assert result.history[0]["valid_perplexity"] > result.best_val_perplexity
    assert result.best_val_perplexity < 1.6  # falls towards 1 (the text is almost deterministic)
    assert len(vocab) == len(set(words) - {"3"}) + 1  # <unk> too; "3" is read as N
    assert result.tokens_per_second > 0


def test_same_seed_same_model():
    words = tiny_stream(5)
    config = LMConfig(epochs=2, dropout=0.3, depth=2, **{k: v for k, v in TINY.items() if k != "depth"})
    a, _, _ = train_lm(words, words, config, progress=False, log=lambda s: None)
    b, _, _ = train_lm(words, words, config, progress=False, log=lambda s: None)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("stop_at", [3, 7])  # within the first epoch (9 steps), then in the second
def test_resume_gives_the_uninterrupted_result(tmp_path, stop_at):
    words = tiny_stream(4)
    config = LMConfig(epochs=3, dropout=0.3, depth=2, decay_start=2, decay_factor=0.5,
                      **{k: v for k, v in TINY.items() if k not in ("depth", "decay_start")})
    quiet = dict(progress=False, log=lambda s: None)
    straight, _, straight_result = train_lm(words, words, config, **quiet)
    checkpoint = tmp_path / "checkpoint.pt"
    _, _, first = train_lm(words, words, config, checkpoint=checkpoint, max_steps=stop_at, **quiet)
    assert first.stopped_early and first.steps == stop_at
    bests = []
    resumed, _, result = train_lm(
        words, words, LMConfig(), checkpoint=checkpoint, resume=True,
        on_best=lambda m, v, info: bests.append(info["valid_perplexity"]), **quiet,
    )
    assert result.steps == straight_result.steps and not result.stopped_early
    for (name, x), y in zip(straight.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(x, y, rtol=0, atol=0, msg=name)
    assert bests == sorted(bests, reverse=True)


def test_evaluation_reports_oov():
    words = tiny_stream(3)
    model, vocab, _ = train_lm(words, words, LMConfig(epochs=1, **TINY), progress=False, log=lambda s: None)
    other = "the zebra sat on the sofa <unk> <eos>".split() * 3
    result = evaluate_words(model, vocab, other, batch_size=1, bptt=5)
    assert result.n_tokens == len(other) - 1
    assert result.oov_rate == pytest.approx(6 / 23)  # zebra, sofa (not the <unk>s of the text)
    assert result.unk_rate == pytest.approx(9 / 23)  # with them
    assert math.isfinite(result.perplexity)
    assert result.loss == pytest.approx(evaluate_ids(model, vocab.encode(other), batch_size=1, bptt=100), abs=1e-5)


# The rnn_lm component


@pytest.fixture(scope="module")
def lm_nlp():
    """A pipeline made from a model trained with train_lm."""
    torch.set_num_threads(1)
    words = tiny_stream()
    config = LMConfig(epochs=6, **TINY)
    model, vocab, _ = train_lm(words, words, config, progress=False, log=lambda s: None)
    return build_pipeline(model, vocab, config), model, vocab


def test_pipeline_scores_like_the_torch_model(lm_nlp):
    nlp, model, vocab = lm_nlp
    doc = nlp("The cat sat on the zebra")
    ids = vocab.encode(["<eos>"] + [t.text for t in doc])
    with torch.no_grad():
        logits, _ = model.eval()(torch.tensor([ids[:-1]]))
        log_probs = torch.log_softmax(logits[0], -1)[torch.arange(len(doc)), torch.tensor(ids[1:])]
    bits = [t._.surprisal for t in doc]
    numpy.testing.assert_allclose(bits, (-log_probs / math.log(2)).numpy(), atol=1e-5)
    assert doc._.perplexity == pytest.approx(2 ** (sum(bits) / len(bits)))
    assert bits[-1] > max(bits[:-1])  # zebra is <unk>, never seen in that place
    assert nlp.get_pipe("rnn_lm").doc_ids(doc).tolist()[-1] == UNK_ID
    # A training sentence is far more likely than its words shuffled.
    assert nlp("the cat sat on the mat")._.perplexity < 3.0
    assert nlp("the cat sat on the mat")._.perplexity * 4 < nlp("mat the on sat cat the")._.perplexity


def test_empty_docs(lm_nlp):
    nlp, _, _ = lm_nlp
    assert nlp("")._.perplexity is None
    docs = list(nlp.pipe(["", "the cat", " ", ""]))
    assert [d._.perplexity is None for d in docs] == [True, False, False, True]
    assert all(t._.surprisal is not None for d in docs for t in d)
    assert nlp.get_pipe("rnn_lm").predict([]) == []


def test_save_load_round_trip(lm_nlp, tmp_path):
    nlp, _, _ = lm_nlp
    texts = ["the dog sat on the log", "a cat met 12 dogs", ""]
    expected = [[t._.surprisal for t in doc] for doc in nlp.pipe(texts)]
    nlp.to_disk(tmp_path / "lm")
    loaded = spacy.load(tmp_path / "lm")
    assert [[t._.surprisal for t in doc] for doc in loaded.pipe(texts)] == expected
    assert loaded.get_pipe("rnn_lm").labels == nlp.get_pipe("rnn_lm").labels
    again = spacy.blank("en").from_config(nlp.config).from_bytes(nlp.to_bytes())
    assert [[t._.surprisal for t in doc] for doc in again.pipe(texts)] == expected
    assert generate(loaded, "the", 10, 1.0, 3) == generate(nlp, "the", 10, 1.0, 3)


def test_generation_is_reproducible(lm_nlp):
    nlp, model, vocab = lm_nlp
    a = generate(nlp, "the cat", n_words=20, temperature=1.0, seed=7)
    assert a == generate(nlp, "the cat", n_words=20, temperature=1.0, seed=7)
    torch.manual_seed(123)  # the global RNG does not matter
    assert a == generate(nlp, "the cat", n_words=20, temperature=1.0, seed=7)
    samples = {generate(nlp, "the", n_words=20, temperature=1.5, seed=s) for s in range(5)}
    assert len(samples) > 1
    assert len(a.split()) == 20 - a.count("\n")
    assert UNK not in a
    greedy = generate(nlp, "a cat and a", n_words=1, temperature=0, seed=1)
    assert greedy == "dog"
    assert sample_words(model, vocab.encode(["the"]), 5, start_id=EOS_ID, temperature=0.0) == sample_words(
        model, vocab.encode(["the"]), 5, start_id=EOS_ID, temperature=0.0, seed=99
    )


def test_trains_through_nlp_update_and_overfits():
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_lm", config={"model": {"width": 32, "word_width": 32, "depth": 1, "vocab_size": 100, "tie_weights": True}})
    examples = [Example(nlp.make_doc(s), nlp.make_doc(s)) for s in SENTENCES[:2]]
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    assert nlp.get_pipe("rnn_lm").labels[:2] == (UNK, EOS)
    first = nlp.update(examples, sgd=optimizer)["rnn_lm"]
    for _ in range(60):
        last = nlp.update(examples, sgd=optimizer)["rnn_lm"]
    assert last < first / 4
    assert nlp("the cat sat on the mat")._.perplexity < 1.6
    scores = nlp.evaluate(examples)
    assert scores["lm_perplexity"] < 1.6 and scores["lm_inverse_perplexity"] == pytest.approx(1 / scores["lm_perplexity"])
    assert nlp.update([Example(nlp.make_doc(""), nlp.make_doc(""))], sgd=optimizer)["rnn_lm"] == 0.0


def test_vocabulary_larger_than_the_model_is_refused():
    nlp = spacy.blank("en")
    pipe = nlp.add_pipe("rnn_lm", config={"model": {"width": 8, "word_width": 8, "depth": 1, "vocab_size": 3}})
    with pytest.raises(ValueError, match="vocab_size"):
        pipe.set_vocabulary([UNK, EOS, "a", "b"])


# Command line


def test_training_command_saves_a_pipeline_and_resumes(tmp_path):
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text("".join(f" {s} \n" for s in SENTENCES * 10))
    valid.write_text(" the cat sat on the sofa \n\n the dog met a cat \n")
    config = LMConfig(epochs=2, **TINY)
    out = tmp_path / "out"
    summary = run_training(train, valid, out, config, max_steps=10, progress=False)
    assert summary["stopped_by_budget"] and (out / "checkpoint.pt").exists()
    summary = run_training(train, valid, out, config, resume=True, progress=False)
    assert summary["epochs_done"] == 2 and summary["steps"] > 10
    nlp = spacy.load(out / "model-best")
    assert nlp.pipe_names == ["rnn_lm"]
    results = evaluate_pipeline(out / "model-best", [valid], batch_size=1, bptt=5)
    result = results[str(valid)]
    assert result["tokens"] == 12  # 13 with <eos>s, the first only read; the blank line is skipped
    assert result["oov_rate"] == pytest.approx(1 / 12)  # sofa
    model, vocab = language_model_from_pipeline(nlp)
    assert result["perplexity"] == pytest.approx(math.exp(evaluate_words(model, vocab, stream_words(
        [s.split() for s in valid.read_text().splitlines() if s.strip()]), batch_size=1, bptt=5).loss))
    cmd = [sys.executable, "-m", "spacy_rnn", "generate", str(out / "model-best"), "--prompt", "the", "--n-words", "5"]
    runs = [subprocess.run(cmd, capture_output=True, text=True, timeout=60) for _ in range(2)]
    assert runs[0].returncode == 0, runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout and runs[0].stdout.strip()


def test_benchmark_script_trains_systems_side_by_side_into_one_table(tmp_path):
    text = "\n".join(["the cat sat on the mat", "a dog sat on a log", "the dog saw the cat"] * 20) + "\n"
    for folder, names in (("ptb", ["ptb.train.txt", "ptb.valid.txt", "ptb.test.txt"]), ("wt2", ["valid.txt", "test.txt"])):
        (tmp_path / folder).mkdir()
        for name in names:
            (tmp_path / folder / name).write_text(text)
    script = Path(__file__).resolve().parent.parent / "scripts" / "benchmark_lm.py"
    output = tmp_path / "result.json"
    run = subprocess.run(
        [sys.executable, str(script), "--system", "lstm", "--system", "rnn_slow:cell=rnn,lr=1",
         "--lanes", "2", "--epochs", "2", "--depth", "1", "--width", "8", "--embed-width", "8", "--bptt", "5",
         "--batch-size", "4", "--ptb-dir", str(tmp_path / "ptb"), "--wikitext-dir", str(tmp_path / "wt2"),
         "--out-dir", str(tmp_path / "runs"), "--output", str(output)],
        capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(output.read_text())
    rows = {row["system"]: row for row in result["results"]}
    assert list(rows) == ["lstm", "rnn_slow"]
    assert rows["rnn_slow"]["config"]["cell"] == "rnn" and rows["rnn_slow"]["config"]["lr"] == 1.0
    assert rows["lstm"]["config"]["lr"] == 20.0 and rows["lstm"]["torch_threads"] == 1
    assert all(len(row["history"]) == 2 and math.isfinite(row["ptb_test_ppl"]) for row in rows.values())
    assert "| rnn_slow | cell=rnn, lr=1.0 | 2 |" in run.stdout
    assert (tmp_path / "runs" / "rnn_slow" / "log.txt").read_text().startswith("== rnn_slow")
