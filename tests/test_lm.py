"""The recurrent language model (issue 6): the torch model, TBPTT training
with resume, the rnn_lm component, generation and the command line."""
import json
import math
import re
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from thinc.api import fix_random_seed
from typer.testing import CliRunner

import spacy_rnn.training.lm as lm_module
import spacy_rnn.training.lm_pipeline as lm_pipeline_module
from spacy_rnn import generate
from spacy_rnn.cli.lm import make_app
from spacy_rnn.training.lm import (
    EvalResult,
    LMConfig,
    batchify,
    evaluate_ids,
    evaluate_words,
    get_chunk,
    read_lines,
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


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest


def tiny_stream(repeat=20):
    return stream_words([s.split() for s in SENTENCES] * repeat)


def make_lm(cell="lstm", seed=0, **kwargs):
    torch.manual_seed(seed)
    settings = dict(vocab_size=12, embed_width=6, hidden_width=6, n_layers=2, cell=cell)
    settings.update(kwargs)
    return RNNLanguageModel(**settings)


# The torch model


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru", "mingru", "minlstm"])
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
    # Predicting (no gradient: logsumexp in place, one logits tensor per chunk) as with log_softmax,
    # rows past the vocabulary unused
    model.n_words.fill_(10)
    words = ids.clamp(max=9)  # the words in use
    with torch.no_grad():
        for chunk_len in (4, 1000):
            predicted = SequenceLogProbs(model, start_id=EOS_ID, chunk_len=chunk_len).eval()(words, lengths)
            with torch.enable_grad():
                reference = SequenceLogProbs(model, start_id=EOS_ID, chunk_len=chunk_len).eval()(words, lengths)
            assert torch.isfinite(predicted).all()
            torch.testing.assert_close(predicted, reference, rtol=0, atol=1e-5)


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


def test_the_pipeline_reads_ptb_s_unk_as_one_word(lm_nlp, tmp_path):
    """spaCy's tokenizer split PTB's `<unk>` into '<', 'unk', '>': three words scored as unknown ones,
    where train-lm and evaluate-lm read one."""
    nlp, model, vocab = lm_nlp
    nlp.to_disk(tmp_path / "lm")
    for pipeline in (nlp, spacy.load(tmp_path / "lm")):
        doc = pipeline("the <unk> sat on the <eos> mat")
        assert [t.text for t in doc] == ["the", "<unk>", "sat", "on", "the", "<eos>", "mat"]
        assert pipeline.get_pipe("rnn_lm").doc_ids(doc).tolist()[1] == UNK_ID


def test_empty_docs(lm_nlp):
    nlp, _, _ = lm_nlp
    assert nlp("")._.perplexity is None
    docs = list(nlp.pipe(["", "the cat", " ", ""]))
    assert [d._.perplexity is None for d in docs] == [True, False, True, True]  # " ": whitespace, no words
    assert [[t._.surprisal is not None for t in d] for d in docs] == [[], [True, True], [False], []]
    assert nlp.get_pipe("rnn_lm").predict([]) == []


def test_whitespace_tokens_are_neither_read_nor_scored(lm_nlp):
    """spaCy makes tokens of extra spaces and line breaks; they are not words of running text (the
    model never saw them): a text's scores do not depend on its formatting."""
    nlp, _, _ = lm_nlp
    plain = nlp("the cat sat on the mat")
    words = [t._.surprisal for t in plain]
    for text in ("the cat  sat on the mat", "the cat\nsat on the mat\n", "  the cat sat on\n\nthe mat"):
        doc = nlp(text)
        assert [t._.surprisal is None for t in doc] == [t.is_space for t in doc] and any(t.is_space for t in doc)
        numpy.testing.assert_allclose([t._.surprisal for t in doc if not t.is_space], words, atol=1e-6)
        assert doc._.perplexity == pytest.approx(plain._.perplexity)
    assert nlp.get_pipe("rnn_lm").generate(nlp.make_doc("the  cat"), 5, seed=1) == nlp.get_pipe("rnn_lm").generate(
        nlp.make_doc("the cat"), 5, seed=1)


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


@pytest.mark.parametrize("temperature", [-1.0, float("nan"), float("inf")])
def test_generation_refuses_a_temperature_that_is_not_a_finite_number_from_0(lm_nlp, temperature):
    nlp, model, vocab = lm_nlp
    with pytest.raises(ValueError, match="temperature must be a finite number >= 0"):
        sample_words(model, vocab.encode(["the"]), 5, start_id=EOS_ID, temperature=temperature)


def test_tied_weights_the_lm_was_not_trained_with_are_refused_at_load(tmp_path):
    """Untied weights of equal widths have the shapes of tied ones: loading them tied made one
    matrix overwrite the other without a word."""
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_lm", config={"model": {"width": 16, "word_width": 16, "depth": 1, "vocab_size": 50}})
    nlp.initialize(lambda: [Example(nlp.make_doc(s), nlp.make_doc(s)) for s in SENTENCES[:2]])
    nlp.to_disk(tmp_path / "lm")
    with pytest.raises(ValueError, match=r"\[rnn_lm\] the config's model settings .* tie_weights is True, trained with False"):
        spacy.load(tmp_path / "lm", config={"components": {"rnn_lm": {"model": {"tie_weights": True}}}})
    # a shape the weights do not have: torch's "size mismatch for lm.embed.weight" named no setting
    with pytest.raises(ValueError, match=r"\[rnn_lm\] the config's model settings .* vocab_size is 60, trained with 50"):
        spacy.load(tmp_path / "lm", config={"components": {"rnn_lm": {"model": {"vocab_size": 60}}}})
    assert spacy.load(tmp_path / "lm")("the cat")._.perplexity is not None


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


# A doc of 12,288 words through an rnn_lm of 10,000 words read in chunks of 4,096, in a new process:
# the growth of its peak memory, in MB. One chunk's logits are 4,096 x 10,000 floats (164 MB).
LONG_DOC_PEAK = """
import resource, sys
import spacy, torch
torch.set_num_threads(1)
nlp = spacy.blank("en")
nlp.max_length = 10 ** 7
model = {"width": 64, "word_width": 64, "depth": 1, "vocab_size": 10000, "chunk_len": 4096}
pipe = nlp.add_pipe("rnn_lm", config={"model": model})
pipe.set_vocabulary(["<unk>", "<eos>"] + [f"w{i}" for i in range(9000)])  # 1,000 rows left unused
doc = nlp.make_doc(" ".join(f"w{i % 9000}" for i in range(3 * 4096)))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
nlp(doc)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024, doc._.perplexity)
"""


def test_a_long_doc_is_scored_with_one_vocabulary_sized_tensor_at_a_time():
    """Each chunk made three (chunk, vocab_size) float tensors (the logits, the logits with the unused
    rows masked, log_softmax's output) and glibc's malloc did not reuse their blocks between chunks:
    a 200,000-word doc peaked at 7.5 GB with a 10,000-word vocabulary and chunks of 256 words. Now the
    logits are the only one, their exponentials taken in place."""
    result = subprocess.run([sys.executable, "-c", LONG_DOC_PEAK], capture_output=True, text=True, check=True)
    grown_mb, perplexity = result.stdout.split()
    assert int(grown_mb) < 260 and math.isfinite(float(perplexity)), result.stdout  # 648 before, 180 now


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


@pytest.mark.slow  # trains two systems in two processes (about 9 s); the default run stays under 5 minutes
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


# Nothing lost, nothing silently changed (issue 11)

LM_QUIET = dict(progress=False)


def write_corpus(tmp_path, train_text=None, valid_text=None):
    train, valid = tmp_path / "train.txt", tmp_path / "valid.txt"
    train.write_text(train_text if train_text is not None else "".join(f"{s}\n" for s in SENTENCES * 4))
    valid.write_text(valid_text if valid_text is not None else "the cat sat on the sofa\nthe dog met a cat\n")
    return train, valid


def test_lm_reader_drops_the_bom_and_splits_on_spaces_and_tabs_only(tmp_path, lm_nlp):
    path = tmp_path / "bom.txt"
    path.write_bytes("\ufeffthe cat\tsat  \n \t \n\nin\u0085side a\u2028b\r\n\u2028\n".encode("utf-8"))
    assert read_lines(path) == [["the", "cat", "sat"], ["in\u0085side", "a\u2028b"], ["\u2028"]]
    # evaluate-lm reads the same way: a BOM does not make the first word out of vocabulary.
    nlp, _, _ = lm_nlp
    nlp.to_disk(tmp_path / "lm")
    plain, bom = tmp_path / "plain.txt", tmp_path / "with_bom.txt"
    plain.write_text("the cat sat on the mat\n", encoding="utf-8")
    bom.write_text("\ufeffthe cat sat on the mat\n", encoding="utf-8")
    results = evaluate_pipeline(tmp_path / "lm", [plain, bom], batch_size=1, bptt=5)
    assert results[str(bom)] == {**results[str(plain)], "seconds": results[str(bom)]["seconds"]}
    assert results[str(bom)]["oov_rate"] == 0.0


@pytest.mark.parametrize("content, message", [
    (b"", r"has no words \(it is empty or has only blank lines\)"),
    (b" \t\n\n", r"has no words \(it is empty or has only blank lines\)"),
    (b"hello\n", r"has 2 tokens \(words plus one <eos> per line\); training with batch size 2 needs at least 4"),
    (b"\x89PNG\r\n\x1a\n", r":1: cannot decode byte b'\\x89' at column 1 as UTF-8"),
    (b"the cat\n\x00\x00\x01\x00 sat\n", r":2: a NUL character at column 1: this looks like a binary file"),
])
def test_bad_training_file_is_named(tmp_path, monkeypatch, content, message):
    train, valid = write_corpus(tmp_path)
    train.write_bytes(content)
    monkeypatch.setattr(lm_module, "train_epoch", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=re.escape(str(train)) + ".*" + message):
        run_training(train, valid, tmp_path / "out", LMConfig(epochs=1, **TINY), **LM_QUIET)
    assert not (tmp_path / "out" / "checkpoint.pt").exists()


def test_empty_validation_file_fails_before_training(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path, valid_text="\n  \n")
    monkeypatch.setattr(lm_module, "train_epoch", lambda *a, **k: pytest.fail("trained"))
    with pytest.raises(ValueError, match=re.escape(f"{valid}: the validation file has no words")):
        run_training(train, valid, tmp_path / "out", LMConfig(epochs=1, **TINY), **LM_QUIET)
    with pytest.raises(ValueError, match="no validation words"):
        train_lm(tiny_stream(1), [], LMConfig(epochs=1, **TINY), progress=False, log=lambda s: None)


def test_a_crash_while_saving_keeps_the_previous_model_best(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path)
    out = tmp_path / "out"
    run_training(train, valid, out, LMConfig(epochs=1, **TINY), **LM_QUIET)
    before = (out / "model-best" / "lm_training.json").read_text()
    texts = ["the cat sat", "a dog"]
    expected = [doc._.perplexity for doc in spacy.load(out / "model-best").pipe(texts)]

    def half_written(self, path, **kwargs):
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / "config.cfg").write_text("[nlp]\nlang = ")
        raise OSError("disk full")

    monkeypatch.setattr(spacy.language.Language, "to_disk", half_written)
    with pytest.raises(OSError, match="disk full"):
        run_training(train, valid, out, LMConfig(epochs=1, **{**TINY, "seed": 1}), **LM_QUIET)
    monkeypatch.undo()
    assert (out / "model-best" / "lm_training.json").read_text() == before
    assert [doc._.perplexity for doc in spacy.load(out / "model-best").pipe(texts)] == expected
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "model-best", "model-last", "training.json"]


def test_training_puts_back_a_model_best_that_a_crash_left_aside(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path)
    out = tmp_path / "out"
    run_training(train, valid, out, LMConfig(epochs=1, **TINY), **LM_QUIET)
    (out / "model-best").rename(out / ".model-best.old-99999")  # between the two renames
    monkeypatch.setattr(lm_pipeline_module, "train_lm", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("killed")))
    with pytest.raises(RuntimeError, match="killed"):
        run_training(train, valid, out, LMConfig(epochs=1, **TINY), **LM_QUIET)
    assert spacy.load(out / "model-best").pipe_names == ["rnn_lm"]
    assert not (out / ".model-best.old-99999").exists()


def test_evaluate_lm_reports_every_file(tmp_path, lm_nlp):
    nlp, _, _ = lm_nlp
    nlp.to_disk(tmp_path / "lm")
    good, binary, empty = tmp_path / "good.txt", tmp_path / "binary.txt", tmp_path / "empty.txt"
    good.write_text("the cat sat on the mat\n")
    binary.write_bytes(b"the cat\n\xff\xfe\n")
    empty.write_text("\n")
    results = evaluate_pipeline(tmp_path / "lm", [good, binary, empty], batch_size=1, bptt=5)
    assert list(results) == [str(good), str(binary), str(empty)]
    assert results[str(good)]["tokens"] == 6 and "error" not in results[str(good)]
    assert results[str(binary)] == {"error": f"{binary}:2: cannot decode byte b'\\xff' at column 1 as UTF-8 "
                                             "(the encoding this reader assumes); re-encode the file as UTF-8"}
    assert results[str(empty)] == {"error": f"{empty}: no words to evaluate (the file is empty or has only blank lines)"}
    output = tmp_path / "results.json"
    run = CliRunner().invoke(make_app(), ["evaluate-lm", str(tmp_path / "lm"), str(good), str(binary), str(empty),
                                          "--batch-size", "1", "--output", str(output)])
    assert run.exit_code == 1, run.output
    assert f"{good}: perplexity" in run.output and f"{binary}:2: cannot decode" in run.output
    assert "2 of 3 files failed" in run.output
    written = json.loads(output.read_text())
    assert written[str(good)]["perplexity"] == pytest.approx(results[str(good)]["perplexity"])
    assert written[str(empty)] == results[str(empty)]


def test_an_int8_copy_evaluates_generates_and_scores_close_to_float(tmp_path, lm_nlp):
    """The language model's decoder is an int8 layer in a quantized copy (no weight tensor):
    evaluation, generation and the component's scores still run, close to the float model's."""
    from spacy_rnn import load_int8

    nlp, _, _ = lm_nlp
    nlp.to_disk(tmp_path / "lm")
    load_int8(tmp_path / "lm").to_disk(tmp_path / "int8")
    text = tmp_path / "text.txt"
    text.write_text("the cat sat on the mat\nthe dog sat on the log\n")
    float_ppl, int8_ppl = (evaluate_pipeline(tmp_path / name, [text], batch_size=1, bptt=5)[str(text)]["perplexity"]
                           for name in ("lm", "int8"))
    assert int8_ppl == pytest.approx(float_ppl, rel=0.05)
    int8 = spacy.load(tmp_path / "int8")
    assert int8.get_pipe("rnn_lm").model.attrs.get("spacy_rnn_int8")
    assert len(generate(int8, "the", 5, 1.0, 3).split()) >= 5
    doc, int8_doc = nlp("the cat sat on the log"), int8("the cat sat on the log")
    assert [t._.surprisal for t in int8_doc] == pytest.approx([t._.surprisal for t in doc], abs=0.2)


def test_resume_refuses_another_corpus_or_other_options(tmp_path, capsys):
    train, valid = write_corpus(tmp_path)
    out = tmp_path / "out"
    config = LMConfig(epochs=2, **TINY)
    run_training(train, valid, out, config, resume=True, max_steps=3, **LM_QUIET)
    assert f"--resume: no checkpoint at {out / 'checkpoint.pt'}; starting a fresh run" in capsys.readouterr().out
    with pytest.raises(ValueError, match=r"lr: 0\.01 when the run started, now 0\.02; epochs: 2 when the run started, now 3"):
        run_training(train, valid, out, LMConfig(**{**asdict(config), "lr": 0.02, "epochs": 3}), resume=True, **LM_QUIET)
    with pytest.raises(ValueError, match=r"limit_tokens: None when the run started, now 50"):
        run_training(train, valid, out, config, resume=True, limit_tokens=50, **LM_QUIET)
    other = tmp_path / "other_valid.txt"
    other.write_text("the cat sat on the log\n")
    with pytest.raises(ValueError, match=re.escape(f"the validation file {other} (23 bytes, sha256 ") + ".*"
                       + re.escape(f"is not the one the run started with: {valid} (")):
        run_training(train, other, out, config, resume=True, **LM_QUIET)
    valid.write_text(valid.read_text() + "one more line\n")
    with pytest.raises(ValueError, match=r"the validation file .* is not the one the run started with"):
        run_training(train, valid, out, config, resume=True, **LM_QUIET)


def test_divergence_keeps_the_last_good_model(tmp_path):
    train, valid = write_corpus(tmp_path)
    out = tmp_path / "out"
    # lr 1 for epoch 1, then 1000: the loss explodes in epoch 2.
    options = ["--depth", "1", "--width", "24", "--embed-width", "24", "--batch-size", "2", "--bptt", "8",
               "--lr", "1", "--clip", "0", "--decay-start", "2", "--decay-factor", "1000", "--plateau-factor", "1",
               "--epochs", "3", "--no-progress"]
    run = CliRunner().invoke(make_app(), ["train-lm", str(train), str(valid), str(out)] + options)
    assert run.exit_code == 0, run.output
    assert "valid ppl inf" in run.output and "training diverged" in run.output
    summary = json.loads((out / "training.json").read_text())
    assert summary["diverged"].startswith("the validation perplexity is inf after epoch 2")
    assert summary["best_epoch"] == 1 and math.isfinite(summary["best_valid_perplexity"])
    assert [e["valid_perplexity"] for e in summary["history"]][1] == float("inf")
    assert json.loads((out / "model-best" / "lm_training.json").read_text())["epoch"] == 1
    assert spacy.load(out / "model-best")("the cat sat")._.perplexity < 100
    assert not (out / "model-last").exists()  # not overwritten with the diverged weights
    saved = torch.load(out / "checkpoint.pt", weights_only=True)
    assert saved["epoch"] == 2 and saved["position"] == 0  # the end of epoch 1, the last good state
    assert EvalResult(loss=1000.0, n_tokens=3, n_unk=0, n_oov=0).perplexity == float("inf")


def test_a_training_loss_that_blows_up_stops_the_run_at_once(tmp_path, monkeypatch):
    train, valid = write_corpus(tmp_path)
    out = tmp_path / "out"
    config = LMConfig(epochs=2, **{**TINY, "optimizer": "sgd", "lr": 1e38, "clip": 0.0})
    summary = run_training(train, valid, out, config, **LM_QUIET)
    assert summary["diverged"] == "the training loss is inf at step 2 of epoch 1"
    assert summary["history"] == [] and summary["best_epoch"] is None
    written = json.loads((out / "training.json").read_text())
    assert written["best_valid_perplexity"] == float("inf")  # written as Infinity
    assert sorted(p.name for p in out.iterdir()) == ["training.json"]  # no diverged model, no checkpoint
    # Weights that are no longer finite after a step with a finite loss are not checkpointed either.
    state = lm_module.new_train_state(LMConfig(**TINY), lm_module.build_vocab(tiny_stream(1), LMConfig(**TINY)))
    step = lm_module.train_step

    def step_then_overflow(state, inputs, targets):
        loss = step(state, inputs, targets)
        with torch.no_grad():
            state.model.decoder.bias[0] = float("inf")
        return loss

    monkeypatch.setattr(lm_module, "train_step", step_then_overflow)
    checkpointer = lm_module.Checkpointer(tmp_path / "checkpoint.pt", minutes=0)
    data = batchify(state.vocab.encode(tiny_stream(2)), 2)
    starts = lm_module.chunk_starts(data.shape[1], 8)
    assert not lm_module.train_epoch(state, data, starts, lm_module.Budget(0.0), checkpointer, False)
    assert state.diverged == "the weights are not finite after step 1 of epoch 1"
    assert not (tmp_path / "checkpoint.pt").exists()


def test_train_lm_last_line_names_the_epoch_model_best_is_from(tmp_path):
    from spacy_rnn.cli.lm import finished_line

    def summary(history, best_epoch):
        return {"history": history, "best_epoch": best_epoch, "best_valid_perplexity": 154.57,
                "epochs_done": sum(e["complete"] for e in history), "tokens_per_second": 1000.0, "wall_seconds": 12.0}

    two = [{"epoch": 1, "complete": True}, {"epoch": 2, "complete": True}]
    line = finished_line(summary(two, 1), tmp_path)
    assert "best valid perplexity 154.57, from epoch 1; 2 epochs complete" in line
    partial = [{"epoch": 1, "complete": True}, {"epoch": 2, "complete": False}]
    assert "from epoch 2 (part of it: stopped by the budget); 1 epochs complete" in finished_line(summary(partial, 2), tmp_path)
    assert finished_line(summary([], None), tmp_path).startswith("no epoch was validated")


def test_a_second_rnn_lm_in_a_pipeline_is_refused():
    """Both would write the one token._.surprisal / doc._.perplexity, and be scored on the last one's."""
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_lm", name="lm_a", config={"model": {"width": 16, "word_width": 16, "depth": 1, "vocab_size": 50}})
    with pytest.raises(ValueError, match=r"\[lm_b\] the pipeline already has an rnn_lm, 'lm_a'"):
        nlp.add_pipe("rnn_lm", name="lm_b")
    assert nlp.pipe_names == ["lm_a"]
