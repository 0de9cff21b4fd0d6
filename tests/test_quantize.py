"""int8 prediction: quantized pipelines agree with the float ones, round-trip through disk, and load by config."""
import itertools
import shutil
import subprocess
import sys

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import fix_random_seed
import torch
from torch import nn

from spacy_rnn import choose_word_vocabularies, load_int8, quantize_pipeline
from spacy_rnn.cli import make_app
from spacy_rnn.models.ops import Int8AffineOps, TorchGemmOps
from spacy_rnn.models.wrappers import torch_modules
from spacy_rnn.pipeline.quantize import save_int8

from .conftest import SMALL_ENCODER, TRAIN_DATA, make_examples, run_app_in_process
from .test_project import DATA

TEXTS = ["I like green eggs .", "The dog runs fast", "Eat blue ham today !", "Unseen words : zebras quarrel"] * 5


@pytest.fixture(scope="module", params=["mingru", "lstm", "mingru_gated"])
def float_pipeline(request, tmp_path_factory):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell=request.param)
    if request.param == "mingru_gated":  # output gates: a third int8 part in each layer
        encoder = dict(SMALL_ENCODER, cell="mingru", output_gate=True, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}})
    examples = make_examples(nlp)
    optimizer = nlp.initialize(lambda: examples)
    optimizer.learn_rate = 0.01
    for _ in range(40):
        nlp.update(examples, sgd=optimizer)
    path = tmp_path_factory.mktemp("float") / request.param
    nlp.to_disk(path)
    return request.param, path


def tags(nlp):
    return [[t.tag_ for t in doc] for doc in nlp.pipe(TEXTS)]


def scores(nlp):
    """The tagger's tag probabilities, (n_tokens, n_tags) per text."""
    return nlp.get_pipe("rnn_tagger").model.predict([nlp.make_doc(text) for text in TEXTS])


def n_linear(nlp):
    return sum(isinstance(m, nn.Linear) for module in torch_modules(nlp.get_pipe("rnn_tagger").model) for m in module.modules())


def output_ops(nlp):
    return nlp.get_pipe("rnn_tagger").model.get_ref("output_layer").ops


def test_quantized_pipeline_agrees_and_round_trips(float_pipeline, tmp_path):
    cell, path = float_pipeline
    float_nlp = spacy.load(path)
    linear_before = n_linear(float_nlp)
    int8 = load_int8(path)
    if cell.startswith("mingru"):
        assert linear_before > 0 and n_linear(int8) == 0  # every Linear of the minGRU stack is now int8
    # the output layer too, whatever the cell
    assert isinstance(output_ops(int8), Int8AffineOps) and not isinstance(output_ops(float_nlp), Int8AffineOps)
    float_tags, int8_tags = tags(float_nlp), tags(int8)
    # int8 weights move the tag probabilities a little: every tag the float model is not
    # near a tie on stays the same (on this tiny model one token, ":", is a near tie; the
    # tagger benchmark's int8 rows compare whole test sets).
    float_scores, int8_scores = scores(float_nlp), scores(int8)
    confident = 0
    for f, q, f_tags, q_tags in zip(float_scores, int8_scores, float_tags, int8_tags):
        assert numpy.abs(f - q).max() <= 0.1
        top_two = numpy.sort(f, axis=1)[:, -2:]
        for margin, a, b in zip(top_two[:, 1] - top_two[:, 0], f_tags, q_tags):
            if margin >= 0.2:
                confident += 1
                assert a == b
    assert confident >= 0.8 * sum(len(x) for x in float_tags)  # the check above is not vacuous
    # the CLI writes a copy that spacy.load reads as int8, with the same predictions
    args = ["quantize", str(path), str(tmp_path / "int8")]
    if cell == "mingru_gated":  # as a user runs it; the other cells in this process (a new interpreter costs ~4 s)
        result = subprocess.run([sys.executable, "-m", "spacy_rnn", *args], capture_output=True, text=True)
    else:
        result = run_app_in_process(make_app(), *args)
    assert result.returncode == 0, result.stderr
    loaded = spacy.load(tmp_path / "int8")
    assert loaded.config["nlp"]["after_pipeline_creation"]["@callbacks"] == "spacy_rnn.quantize_int8.v1"
    assert tags(loaded) == int8_tags
    assert isinstance(output_ops(loaded), Int8AffineOps)
    if cell.startswith("mingru"):
        assert n_linear(loaded) == 0
    loaded.to_disk(tmp_path / "again")
    assert tags(spacy.load(tmp_path / "again")) == int8_tags


def test_quantizing_twice_changes_nothing(float_pipeline):
    _, path = float_pipeline
    nlp = load_int8(path)
    before = tags(nlp)
    assert tags(quantize_pipeline(nlp)) == before


def test_a_pipeline_quantized_in_memory_saves_as_int8(float_pipeline, tmp_path):
    """load_int8's pipeline, written with nlp.to_disk, loads as int8 (its config names the callback)."""
    _, path = float_pipeline
    nlp = load_int8(path)
    nlp.to_disk(tmp_path / "int8")
    loaded = spacy.load(tmp_path / "int8")
    assert tags(loaded) == tags(nlp)
    assert isinstance(output_ops(loaded), Int8AffineOps)


CALLS = []


@spacy.registry.callbacks("test_quantize.count_creations.v1")
def count_creations():
    def callback(nlp):
        CALLS.append(nlp.pipe_names)
        return nlp
    return callback


def test_quantizing_keeps_the_pipelines_own_after_creation_callback(float_pipeline, tmp_path):
    _, path = float_pipeline
    nlp = spacy.load(path, config={"nlp": {"after_pipeline_creation": {"@callbacks": "test_quantize.count_creations.v1"}}})
    del CALLS[:]
    quantize_pipeline(nlp).to_disk(tmp_path / "int8")
    loaded = spacy.load(tmp_path / "int8")
    assert CALLS == [["rnn_tagger"]]  # the pipeline's own callback still runs when it loads
    assert tags(loaded) == tags(nlp) and isinstance(output_ops(loaded), Int8AffineOps)


def test_quantizing_shows_no_torch_ao_deprecation(float_pipeline, recwarn):
    """torch.ao's deprecation warnings say nothing a user can act on (models/pytorch/int8.py)."""
    import warnings

    _, path = float_pipeline
    warnings.simplefilter("always")
    load_int8(path)
    assert [str(w.message)[:80] for w in recwarn if "quantiz" in str(w.message).lower()] == []


DYNAMIC_LINEAR = torch.ao.nn.quantized.dynamic.Linear


def packed_for(engine, layer):
    """A copy of a dynamically quantized Linear with its int8 weights packed for `engine`."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = engine
    try:
        copy = DYNAMIC_LINEAR(layer.in_features, layer.out_features, dtype=torch.qint8)
        copy.set_weight_bias(layer.weight(), layer.bias())
    finally:
        torch.backends.quantized.engine = previous
    return copy


def packing_engines(model):
    """For each int8 Linear of the model: "onednn" or "default" (torch's engine in this process),
    whichever packing its outputs equal on a test input (a packing checked to give other outputs)."""
    default = torch.backends.quantized.engine
    engines = []
    for module in torch_modules(model):
        for layer in module.modules():
            if isinstance(layer, DYNAMIC_LINEAR):
                x = torch.randn(64, layer.in_features, generator=torch.Generator().manual_seed(0))
                onednn, other = packed_for("onednn", layer)(x), packed_for(default, layer)(x)
                assert not torch.equal(onednn, other)  # the two packings are told apart by their outputs
                out = layer(x)
                engines.append("onednn" if torch.equal(out, onednn) else "default" if torch.equal(out, other) else None)
    return engines


@pytest.mark.skipif("onednn" not in torch.backends.quantized.supported_engines or
                    torch.backends.quantized.engine == "onednn", reason="needs torch's oneDNN engine besides the default")
@pytest.mark.parametrize("flags, expected", [({"avx2", "amx_int8", "amx_tile"}, "onednn"),
                                             ({"avx512f", "avx512_vnni"}, "default"), ({"avx2"}, "default")])
def test_int8_weights_are_packed_for_onednn_where_the_cpu_has_amx_int8(flags, expected, tmp_path, monkeypatch):
    """Quantized in memory, loaded from disk, unpickled and copied, the int8 weights are packed
    for oneDNN's kernels where the CPU has AMX-INT8, else for the process's
    engine, which is left as it was (models/pytorch/int8.py)."""
    import pickle

    from spacy_rnn.models.pytorch import int8

    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset(flags))
    engine = torch.backends.quantized.engine
    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell="mingru", output_gate=True, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}})
    nlp.initialize(lambda: make_examples(nlp))
    quantize_pipeline(nlp)
    nlp.to_disk(tmp_path / "int8")
    for pipeline in (nlp, spacy.load(tmp_path / "int8"), pickle.loads(pickle.dumps(nlp))):
        model = pipeline.get_pipe("rnn_tagger").model
        for engines in (packing_engines(model), packing_engines(model.copy())):  # copy: as nlp.replace_listeners does
            assert len(engines) >= 3 and set(engines) == {expected}, engines
    # the output layer's int8 weights (Int8AffineOps) are packed the same way
    weight, bias = torch.randn(7, 16), torch.randn(7)
    x = torch.randn(64, 16)
    layer = int8.int8_linear(weight, bias)
    assert torch.equal(layer(x), packed_for("onednn" if expected == "onednn" else engine, layer)(x))
    assert torch.backends.quantized.engine == engine


@pytest.mark.skipif("fbgemm" not in torch.backends.quantized.supported_engines, reason="needs torch's FBGEMM engine")
def test_the_environment_chooses_the_int8_engine_over_the_cpus_flags(monkeypatch):
    from spacy_rnn.models.pytorch import int8

    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset({"amx_int8"}))
    monkeypatch.setenv("SPACY_RNN_INT8_ENGINE", "fbgemm")
    weight, bias, x = torch.randn(7, 16), torch.randn(7), torch.randn(64, 16)
    layer = int8.int8_linear(weight, bias)
    assert torch.equal(layer(x), packed_for("fbgemm", layer)(x))
    if "onednn" in torch.backends.quantized.supported_engines:
        assert not torch.equal(layer(x), packed_for("onednn", layer)(x))
    monkeypatch.setenv("SPACY_RNN_INT8_ENGINE", "fast")
    with pytest.raises(ValueError, match="SPACY_RNN_INT8_ENGINE='fast' is not a quantized engine of this torch; choose from"):
        int8.int8_linear(weight, bias)


@pytest.mark.skipif("onednn" not in torch.backends.quantized.supported_engines or
                    torch.backends.quantized.engine == "onednn", reason="needs torch's oneDNN engine besides the default")
def test_two_threads_packing_int8_weights_take_turns(monkeypatch):
    """The engine is process-wide: a second thread does not start packing while the first has the
    engine switched (else the first's way out would put it back under the second)."""
    import threading

    from spacy_rnn.models.pytorch import int8

    monkeypatch.setattr(int8, "cpu_flags", lambda: frozenset({"amx_int8"}))
    engine = torch.backends.quantized.engine
    first_inside, first_may_leave = threading.Event(), threading.Event()
    seen = []

    def first():
        with int8.packing():
            first_inside.set()
            first_may_leave.wait(5)

    def second():
        with int8.packing():
            seen.append(torch.backends.quantized.engine)

    a = threading.Thread(target=first)
    a.start()
    assert first_inside.wait(5)
    b = threading.Thread(target=second)
    b.start()
    b.join(0.3)
    assert seen == []  # waiting for the first to finish
    first_may_leave.set()
    a.join(5)
    b.join(5)
    assert seen == ["onednn"] and torch.backends.quantized.engine == engine


def test_ner_and_a_listening_textcat_get_int8_weights_where_they_serve():
    """quantize_pipeline reaches NER's int8 stack, and a textcat that listens to a shared encoder
    (no torch module of its own): its softmax output layer, and its encoder, spaCy's tok2vec
    component, get int8 weights. NER's emission layer is a Thinc Linear, which multiplies through
    ops.gemm, not Int8AffineOps' affine: it keeps float32 ops (it was given Int8AffineOps, which it
    never called). Both predict as the float ones."""
    from .test_ner import NER_DATA, make_nlp, train
    from .test_textcat import DATA, examples as textcat_examples

    ner = make_nlp(cell="mingru")
    train(ner)
    fix_random_seed(0)
    textcat = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell="mingru", bidirectional=True, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})
    textcat.add_pipe("tok2vec", config={"model": encoder})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 2 * SMALL_ENCODER["width"], "upstream": "*"}
    textcat.add_pipe("rnn_textcat", name="textcat", config={"model": {
        "@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True, "pooling": ["mean"], "encoder": listener}})
    egs = textcat_examples(textcat)
    optimizer = textcat.initialize(lambda: egs)
    optimizer.learn_rate = 0.01
    for _ in range(40):
        textcat.update(egs, sgd=optimizer)
    texts = [text for text, _ in NER_DATA]
    float_ents = [[(e.start, e.end, e.label_) for e in doc.ents] for doc in ner.pipe(texts)]
    float_cats = [max(doc.cats, key=doc.cats.get) for doc in textcat.pipe(t for t, _ in DATA)]
    quantize_pipeline(ner)
    quantize_pipeline(textcat)
    assert type(ner.get_pipe("rnn_ner").model.get_ref("output_layer").ops) is TorchGemmOps
    assert sum(isinstance(m, nn.Linear) for module in torch_modules(ner.get_pipe("rnn_ner").model) for m in module.modules()) == 0
    assert isinstance(textcat.get_pipe("textcat").model.get_ref("output_layer").ops, Int8AffineOps)
    assert sum(isinstance(m, nn.Linear) for module in torch_modules(textcat.get_pipe("tok2vec").model) for m in module.modules()) == 0
    assert [[(e.start, e.end, e.label_) for e in doc.ents] for doc in ner.pipe(texts)] == float_ents
    assert [max(doc.cats, key=doc.cats.get) for doc in textcat.pipe(t for t, _ in DATA)] == float_cats


def test_quantizing_weights_off_the_cpu_is_refused_before_anything_changes(float_pipeline):
    """int8 runs on the CPU only; a component on another device (here "meta", standing in for a
    GPU) gets an error naming it, and no component is quantized."""
    _, path = float_pipeline
    nlp = spacy.load(path)
    before = n_linear(nlp)
    for module in torch_modules(nlp.get_pipe("rnn_tagger").model):
        module.to("meta")
    with pytest.raises(ValueError, match=r"\[rnn_tagger\].*meta"):
        quantize_pipeline(nlp)
    assert n_linear(nlp) == before and not isinstance(output_ops(nlp), Int8AffineOps)


@pytest.mark.skipif(not (DATA / "ud_english_ewt").exists(), reason="needs ../shared/data")
def test_int8_tags_as_float_does_on_real_data(tmp_path):
    """The issue's check on real text: a small minGRU tagger (output gates, short convolution, as
    configs/tagger_mingru_fast.cfg but narrower) trained briefly on UD English-EWT; its int8 copy
    tags at least 99% of 800 dev sentences' tokens as the float pipeline does, at an accuracy
    within 0.2 points (the tagger benchmark holds the full-size config to 0.1 on all of dev)."""
    import random

    from spacy.tokens import Doc
    from spacy.training import Example
    from spacy.training.converters import conllu_to_docs

    def sentences(split, n):
        text = (DATA / "ud_english_ewt" / f"en_ewt-ud-{split}.conllu").read_text(encoding="utf8")
        return list(itertools.islice(conllu_to_docs(text, n_sents=1, no_print=True), n))

    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = {"@architectures": "spacy_rnn.RNNEncoder.v2", "cell": "mingru", "width": 64, "depth": 2,
               "output_gate": True, "short_conv": True, "word_width": 48, "char_filters": 32}
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}})
    examples = [Example.from_dict(Doc(nlp.vocab, words=[t.text for t in doc]), {"tags": [t.tag_ for t in doc]})
                for doc in sentences("train", 3000)]
    optimizer = nlp.initialize(lambda: examples)
    for epoch in range(2):
        random.Random(epoch).shuffle(examples)
        for i in range(0, len(examples), 32):
            nlp.update(examples[i:i + 32], sgd=optimizer)
    nlp.to_disk(tmp_path / "float")
    int8 = load_int8(tmp_path / "float")
    dev = sentences("dev", 800)

    def predicted(pipeline):
        return [t.tag_ for doc in pipeline.pipe(Doc(pipeline.vocab, words=[t.text for t in d]) for d in dev) for t in doc]

    gold = [t.tag_ for doc in dev for t in doc]
    float_tags, int8_tags = predicted(nlp), predicted(int8)
    accuracy = lambda tags: sum(map(str.__eq__, tags, gold)) / len(gold)  # noqa: E731
    assert accuracy(float_tags) > 0.8  # trained, so that agreeing means something
    assert sum(map(str.__eq__, float_tags, int8_tags)) / len(gold) >= 0.99
    assert accuracy(int8_tags) >= accuracy(float_tags) - 0.002


def test_other_libraries_torch_modules_are_left_alone():
    """Only spacy-rnn's own modules are quantized: spaCy's tagger on thinc's PyTorchLSTM
    (spacy.TorchBiLSTMEncoder.v1) keeps its module, and the pipeline is not marked int8."""
    nlp = spacy.blank("en")
    encode = {"@architectures": "spacy.TorchBiLSTMEncoder.v1", "width": 8, "depth": 1, "dropout": 0.0}
    embed = {"@architectures": "spacy.MultiHashEmbed.v2", "width": 8, "attrs": ["NORM"], "rows": [100],
             "include_static_vectors": False}
    nlp.add_pipe("tagger", config={"model": {"@architectures": "spacy.Tagger.v2", "tok2vec": {
        "@architectures": "spacy.Tok2Vec.v2", "embed": embed, "encode": encode}}})
    nlp.initialize(lambda: make_examples(nlp))
    (lstm,) = torch_modules(nlp.get_pipe("tagger").model)
    before = {name: p.clone() for name, p in lstm.state_dict().items()}
    quantize_pipeline(nlp)
    assert (lstm,) == tuple(torch_modules(nlp.get_pipe("tagger").model))
    assert all(torch.equal(before[name], p) for name, p in lstm.state_dict().items())
    assert not nlp.get_pipe("tagger").model.attrs.get("spacy_rnn_int8")
    assert not nlp.config["nlp"].get("after_pipeline_creation")


# Where `quantize` writes: never over something it would lose.


@pytest.fixture(scope="module")
def small_pipeline(tmp_path_factory):
    """An initialized (untrained) minGRU tagger on disk: what the CLI tests quantize."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell="mingru")
    nlp.add_pipe("rnn_tagger", config={"model": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": encoder}})
    nlp.initialize(lambda: make_examples(nlp))
    path = tmp_path_factory.mktemp("small") / "tagger"
    nlp.to_disk(path)
    return path


def quantize_cli(*args):
    return run_app_in_process(make_app(), "quantize", *args)


def snapshot(folder):
    """Every file under a folder, by relative path, with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(result, named):
    """Exit code 1, nothing written, and a one-line error that names `named`."""
    assert result.returncode == 1, result.stdout
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert str(named) in result.stderr
    assert "wrote" not in result.stdout


def test_quantize_never_writes_over_a_file_or_a_folder_that_is_not_a_pipeline(small_pipeline, tmp_path):
    """An existing file, a folder of other files or a symbolic link is refused with or without
    --force (--force replaces only a pipeline directory), and is left as it was."""
    report = tmp_path / "report.txt"
    report.write_text("important")
    project = tmp_path / "my_project"
    (project / "src").mkdir(parents=True)
    (project / "notes.txt").write_text("precious")
    (project / "src" / "main.py").write_text("print(1)")
    link = tmp_path / "link"  # to an empty folder: atomic_output would swap the link itself aside
    (tmp_path / "empty").mkdir()
    link.symlink_to(tmp_path / "empty")
    for output in (report, project, link):
        for force in ([], ["--force"]):
            assert_refused(quantize_cli(small_pipeline, output, *force), output)
    assert report.read_text() == "important"
    assert snapshot(project) == {"notes.txt": b"precious", "src/main.py": b"print(1)"}
    assert link.is_symlink() and list((tmp_path / "empty").iterdir()) == []


def test_quantize_never_writes_inside_the_pipeline_or_around_it(small_pipeline, tmp_path):
    """OUTPUT inside MODEL (its config.cfg, a new subfolder, MODEL itself) or holding it (a pipeline
    directory with MODEL inside) is refused even with --force; MODEL stays as it was and loads."""
    model = tmp_path / "model"
    shutil.copytree(small_pipeline, model)
    outer = tmp_path / "outer"  # a pipeline directory that --force would otherwise replace, MODEL inside it
    shutil.copytree(small_pipeline, outer)
    inner = outer / "inner"
    shutil.copytree(small_pipeline, inner)
    before, outer_before = snapshot(model), snapshot(outer)
    for source, output in [(model, model / "config.cfg"), (model, model / "int8"), (model, model), (inner, outer)]:
        assert_refused(quantize_cli(source, output, "--force"), output)
    assert snapshot(model) == before and snapshot(outer) == outer_before
    spacy.load(model)


def test_save_int8_stays_out_of_the_loaded_pipelines_own_directory(small_pipeline, tmp_path):
    """save_int8 checks against nlp.path, so a pipeline loaded by package name (no MODEL path for
    the command to check first) is protected too."""
    model = tmp_path / "model"
    shutil.copytree(small_pipeline, model)
    before = snapshot(model)
    nlp = load_int8(model)
    with pytest.raises(ValueError, match=r"int8 is inside the pipeline being quantized"):
        save_int8(nlp, model / "int8")
    with pytest.raises(ValueError, match=r"is the pipeline being quantized"):
        save_int8(nlp, model, force=True)
    assert snapshot(model) == before


def test_quantize_writes_an_empty_folder_and_force_replaces_an_earlier_copy_whole(small_pipeline, tmp_path):
    output = tmp_path / "int8"
    output.mkdir()  # empty: nothing to lose, no --force needed
    assert quantize_cli(small_pipeline, output).returncode == 0
    (output / "stale.txt").write_text("left by an earlier copy")
    assert_refused(quantize_cli(small_pipeline, output), output)  # a pipeline, but not empty: needs --force
    assert (output / "stale.txt").exists()
    result = quantize_cli(small_pipeline, output, "--force")
    assert result.returncode == 0, result.stderr
    assert not (output / "stale.txt").exists()  # replaced whole, not written into
    assert spacy.load(output).get_pipe("rnn_tagger").model.attrs.get("spacy_rnn_int8")


def test_a_failed_quantize_leaves_the_previous_output_as_it_was(small_pipeline, tmp_path, monkeypatch):
    """A write that fails half way (a full disk) is a one-line error, and the earlier copy at OUTPUT
    is untouched, with no temporary folder left beside it."""
    output = tmp_path / "int8"
    assert quantize_cli(small_pipeline, output).returncode == 0
    before = snapshot(output)

    def full_disk(self, path, **kwargs):
        path.mkdir()
        (path / "config.cfg").write_text("half written")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spacy.language.Language, "to_disk", full_disk)
    assert_refused(quantize_cli(small_pipeline, output, "--force"), "No space left on device")
    assert snapshot(output) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["int8"]


def test_quantize_reports_a_model_that_does_not_load_in_one_line(tmp_path):
    """A missing MODEL, or a folder without a pipeline: `error: ...` naming it, exit 1, nothing written."""
    not_a_pipeline = tmp_path / "notes"
    not_a_pipeline.mkdir()
    (not_a_pipeline / "notes.txt").write_text("not a pipeline")
    for model in (tmp_path / "missing", not_a_pipeline):
        assert_refused(quantize_cli(model, tmp_path / "int8"), model)
    assert not (tmp_path / "int8").exists()


# int8 weights predict only: every spacy-rnn component refuses to train on them.

INT8_ENCODER = dict(SMALL_ENCODER, cell="mingru")
TRAINABLE = {
    "rnn_tagger": {"@architectures": "spacy_rnn.RNNTagger.v1", "encoder": INT8_ENCODER},
    "rnn_ner": {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": INT8_ENCODER},
    "rnn_textcat": {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": True,
                    "pooling": ["mean"], "encoder": INT8_ENCODER},
    "rnn_textcat_multilabel": {"@architectures": "spacy_rnn.RNNTextClassifier.v1", "exclusive_classes": False,
                               "pooling": ["mean"], "encoder": INT8_ENCODER},
    "rnn_lm": {"@architectures": "spacy_rnn.RNNLanguageModel.v1", "cell": "mingru", "width": 16, "depth": 1,
               "word_width": 16, "vocab_size": 100},
}


def every_annotation(nlp):
    """TRAIN_DATA with what each component learns from: tags, entities (each noun a FOOD), cats."""
    examples = []
    for words, tags, _ in TRAIN_DATA:
        reference = Doc(nlp.vocab, words=words, tags=tags, ents=["B-FOOD" if t.startswith("NN") else "O" for t in tags])
        reference.cats = {"EXCLAIM": float(words[-1] == "!"), "OTHER": float(words[-1] != "!")}
        examples.append(Example(Doc(nlp.vocab, words=words), reference))
    return examples


@pytest.mark.parametrize("factory", sorted(TRAINABLE))
def test_an_int8_component_refuses_to_train(factory):
    """nlp.update (as spacy train calls it: sgd=False, then finish_update), finish_update,
    nlp.rehearse and nlp.initialize each raise an error naming the component before its weights change (torch
    would only warn that int8 gradients may be wrong, and train the float weights around them)."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": TRAINABLE[factory]})
    examples = every_annotation(nlp)
    nlp.initialize(lambda: examples)
    quantize_pipeline(nlp)
    pipe = nlp.get_pipe(factory)
    before = pipe.to_bytes()
    optimizer = nlp.resume_training()
    refused = rf"^\[{factory}\] has int8 weights \(spacy_rnn quantize / load_int8\): it predicts only"
    with pytest.raises(ValueError, match=refused):
        nlp.update(examples, sgd=False)
    with pytest.raises(ValueError, match=refused):
        pipe.finish_update(optimizer)
    with pytest.raises(ValueError, match=refused):
        nlp.rehearse(examples, sgd=optimizer)
    # initialize drew new float weights under the int8 marks without a word
    with pytest.raises(ValueError, match=refused):
        nlp.initialize(lambda: examples)
    assert pipe.to_bytes() == before
    assert len(pipe.predict([eg.predicted for eg in examples])) == len(examples)  # still predicts


def test_a_component_nothing_in_which_takes_int8_is_named_and_stays_trainable():
    """An LSTM rnn_textcat_multilabel has no nn.Linear (torch's int8 layers leave nn.LSTM as it is)
    and a Linear output layer: quantizing changed nothing, yet it was marked int8 (refusing to
    train) and written as an int8 copy without a word. Now a warning names it; it stays float and
    trainable, and the pipeline's config does not name the int8 callback."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    encoder = dict(SMALL_ENCODER, cell="lstm")
    nlp.add_pipe("rnn_textcat_multilabel", config={"model": {**TRAINABLE["rnn_textcat_multilabel"], "encoder": encoder}})
    nlp.add_pipe("rnn_tagger", config={"model": TRAINABLE["rnn_tagger"]})
    examples = every_annotation(nlp)
    nlp.initialize(lambda: examples)
    before = nlp.get_pipe("rnn_textcat_multilabel").to_bytes()
    with pytest.warns(UserWarning, match=r"^\[rnn_textcat_multilabel\] keeps float32 weights: nothing in it takes int8"):
        quantize_pipeline(nlp)
    assert nlp.get_pipe("rnn_textcat_multilabel").to_bytes() == before
    assert nlp.config["nlp"]["after_pipeline_creation"]["@callbacks"] == "spacy_rnn.quantize_int8.v1"  # the tagger's
    nlp.select_pipes(enable=["rnn_textcat_multilabel"])
    nlp.update(examples, sgd=nlp.resume_training())  # not refused


def test_quantize_refuses_a_pipeline_nothing_in_which_takes_int8(tmp_path):
    """spaCy's own tagger (no spacy-rnn component): quantize wrote a float copy and said "wrote the
    int8 pipeline". Now refused, nothing written."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tagger")
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path / "cnn")
    result = quantize_cli(str(tmp_path / "cnn"), str(tmp_path / "int8"))
    assert_refused(result, tmp_path / "cnn")
    assert "takes int8 weights" in result.stderr and not (tmp_path / "int8").exists()


def test_load_int8_warns_when_nothing_takes_int8(tmp_path):
    """load_int8 on spaCy's own tagger returned the float pipeline without a word (quantize refuses it)."""
    nlp = spacy.blank("en")
    nlp.add_pipe("tagger")
    nlp.initialize(lambda: make_examples(nlp))
    nlp.to_disk(tmp_path / "cnn")
    with pytest.warns(UserWarning, match="nothing in .*cnn takes int8 weights: the pipeline is loaded with float32 ones"):
        load_int8(tmp_path / "cnn")


def int8_shared_encoder_pipeline():
    """spaCy's tok2vec holding a minGRU spacy-rnn encoder and an rnn_ner listening to it,
    initialized (not trained), then quantized; and the examples."""
    fix_random_seed(0)
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": dict(INT8_ENCODER, **{"@architectures": "spacy_rnn.RNNEncoder.v2"})})
    listener = {"@architectures": "spacy_rnn.Tok2VecListener.v1", "upstream": "tok2vec"}
    nlp.add_pipe("rnn_ner", config={"model": {"@architectures": "spacy_rnn.RNNEntityRecognizer.v1", "encoder": listener}})
    examples = every_annotation(nlp)
    choose_word_vocabularies(nlp, examples)
    nlp.initialize(lambda: examples)
    quantize_pipeline(nlp)
    return nlp, examples


def test_spacys_tok2vec_holding_an_int8_encoder_refuses_to_train():
    """spaCy's tok2vec holding a spacy-rnn encoder is not a spacy-rnn pipe: after quantizing, its
    initialize drew a new vocabulary for the int8 weights and its update trained the float weights
    around them, without a word (the listening rnn_ner holds no torch module and stays float)."""
    nlp, examples = int8_shared_encoder_pipeline()
    tok2vec = nlp.get_pipe("tok2vec")
    before = tok2vec.to_bytes()
    refused = r"the spacy-rnn model .* has int8 weights \(spacy_rnn quantize / load_int8\): it predicts only"
    with pytest.raises(ValueError, match=refused):
        nlp.initialize(lambda: examples)
    with pytest.raises(ValueError, match=refused):
        nlp.update(examples)
    assert tok2vec.to_bytes() == before
    assert [len(doc) for doc in nlp.pipe(eg.predicted.text for eg in examples)]  # still predicts


def test_a_component_holding_a_copy_of_an_int8_encoder_is_refused_before_anything_changes():
    """After nlp.replace_listeners the listening rnn_ner holds a copy of the int8 encoder but its own
    model carries no int8 mark: initialize chose a new vocabulary before the encoder refused, and
    prediction then failed (index out of range)."""
    nlp, examples = int8_shared_encoder_pipeline()
    nlp.replace_listeners("tok2vec", "rnn_ner", ["model.encoder"])
    nlp.remove_pipe("tok2vec")
    ner = nlp.get_pipe("rnn_ner")
    before = ner.to_bytes(exclude=["vocab"])  # the new words' strings go into the shared vocab anyway
    more = examples + [Example(Doc(nlp.vocab, words=["Zebras", "graze"]), Doc(nlp.vocab, words=["Zebras", "graze"]))]
    with pytest.raises(ValueError, match=r"^\[rnn_ner\] has int8 weights"):
        nlp.initialize(lambda: more)
    assert ner.to_bytes(exclude=["vocab"]) == before
    assert len(ner.predict([eg.predicted for eg in examples])) == len(examples)
