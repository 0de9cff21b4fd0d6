"""What every neural pipe of spacy_rnn shares: initialize (labels, the word
vocabulary, the model), update with loss checks and global-norm clipping,
prediction in bounded batches under a model lock, and loading that fails with
a clear error. A component adds its own label logic, get_loss and
set_annotations.

Loading: every failure to read a component's files (missing, truncated or
corrupt, labels that do not match the weights) raises a ValueError that
names the component and the file, instead of a msgpack or torch traceback.
"""
import math
import threading
import warnings
import weakref
from contextlib import contextmanager
from itertools import islice
from pathlib import Path
from typing import Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple, Union

import srsly
from spacy.training import Example, validate_examples, validate_get_examples
from spacy.util import ensure_path
from spacy.pipeline.tok2vec import Tok2VecListener
from thinc.api import Model, set_dropout_rate

from ..models.featurize import FeatureLayoutError, check_feature_layout, forget_words, init_word_vocab
from ..models.gradients import all_weights_finite, clip_global_grad_norm, discard_gradients
from ..models.wrappers import (built_settings, fit_word_tables, has_int8_mark, settings_differences,
                               structure_differences)
from ..runtime import apply_thread_policy
from .vocabulary import report_word_vocab, takes_pretrained_vocab

# The labels, in order, that the model's outputs were trained for; saved with the weights.
TRAINED_LABELS = "spacy_rnn_trained_labels"

_LOCKS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
_LOCKS_GUARD = threading.Lock()


def model_lock(pipe) -> threading.RLock:
    """The lock of a pipe's model. Thinc's PyTorchShim switches the torch
    module to eval() and back to train() around every prediction, so two
    threads predicting (or one training) at once would run each other's
    dropout in the wrong mode. Kept outside the pipe so that it pickles."""
    with _LOCKS_GUARD:
        lock = _LOCKS.get(pipe)
        if lock is None:
            lock = _LOCKS[pipe] = threading.RLock()
        return lock


def load_error(name: str, file: Union[str, Path], err: BaseException) -> ValueError:
    return ValueError(f"[{name}] cannot load {file}: {type(err).__name__}: {err}")


def require_file(name: str, file: Path) -> None:
    if not file.exists():
        raise ValueError(f"[{name}] cannot load {file}: the file is missing")


def read_json_file(name: str, file: Path):
    require_file(name, file)
    try:
        return srsly.read_json(file)
    except Exception as err:
        raise load_error(name, file, err) from None


def read_msgpack_file(name: str, file: Path):
    require_file(name, file)
    try:
        return srsly.read_msgpack(file)
    except Exception as err:
        raise load_error(name, file, err) from None


def require_examples(name: str, get_examples: Callable[[], Iterable]) -> None:
    """A clear error for an empty training corpus (spaCy's own check names
    the class, not the component, and raises a TypeError)."""
    if get_examples is None or not callable(get_examples):
        return  # spaCy's validate_get_examples reports this one
    if next(iter(get_examples()), None) is None:
        raise ValueError(
            f"[{name}] the training corpus has no examples; initialize needs at least one annotated Example"
        )


def token_budget_groups(lengths: Sequence[int], max_tokens: int) -> List[List[int]]:
    """Split docs (given by their lengths) into groups whose padded size,
    n_docs * longest doc, is at most max_tokens. Docs are grouped by length;
    a doc longer than max_tokens is a group of its own. Returns the indices
    of each group."""
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: List[List[int]] = []
    current: List[int] = []
    for i in order:
        longest = max(lengths[i], 1)  # sorted, so this doc is the longest so far
        if current and (len(current) + 1) * longest > max_tokens:
            groups.append(current)
            current = []
        current.append(i)
    if current:
        groups.append(current)
    return groups


def refuse_int8_training(name: str, model) -> None:
    """Raise a ValueError naming the component if its model has int8 weights
    (has_int8_mark): torch has no gradients for them, so training would run
    with only a warning and change the float weights around them."""
    if has_int8_mark(model):
        raise ValueError(
            f"[{name}] has int8 weights (spacy_rnn quantize / load_int8): it predicts only; train the float "
            "pipeline, or leave this component out of the update (exclude=, [training] frozen_components)"
        )


def check_rehearsable(name: str, model: Model) -> None:
    """Before a rehearsal update: refuse int8 weights (refuse_int8_training) and a model that
    listens to a shared encoder: spaCy's tok2vec has no rehearse, so it never hands its listeners
    the batch, and the listener failed with whatever it held from the last update (torch's "backward
    through the graph a second time", spaCy's E953 or E203)."""
    refuse_int8_training(name, model)
    if any(isinstance(node, Tok2VecListener) for node in model.walk()):
        raise ValueError(
            f"[{name}] listens to a shared encoder, which spaCy does not rehearse (its tok2vec has no "
            f"rehearse): leave it out of nlp.rehearse (exclude=[{name!r}]) or give it an encoder of its own "
            "(nlp.replace_listeners)"
        )


def rehearsal_step(sgd):
    """The optimizer call for a rehearse, handing `sgd` a copy of each gradient. spaCy's
    nlp.rehearse passes a call that keeps the (weights, gradient) pairs and applies them after the
    rehearse, but Thinc's PyTorch shim zeroes each torch gradient in place once it has handed it
    over, so the torch weights were stepped with zeros. The gradient itself is then zeroed, as
    Thinc's optimizer zeroes the one it is given (a Thinc parameter's would otherwise be applied
    again by the next update). None or False is passed through."""
    if sgd in (None, False):
        return sgd

    def step(key, weights, gradient):
        result = sgd(key, weights, gradient.copy())
        gradient.fill(0)
        return result

    return step


def diverged(name: str, what: str) -> ValueError:
    return ValueError(
        f"[{name}] {what}: training diverged. This update was not applied, so the weights are those "
        "before it; lower the learning rate or max_grad_norm."
    )


_WARNED: set = set()


def _first_time(key) -> bool:
    """True the first time this process asks about `key`: the warning that a saved setting was kept
    is given once per saved component and setting (spaCy's find-threshold loads the same pipeline
    once per threshold tried, with that threshold in the config, then sets it on pipe.cfg)."""
    if key in _WARNED:
        return False
    _WARNED.add(key)
    return True


class SavedSettings:
    """A component's cfg settings at load, for spaCy's pipes and spacy-rnn's count taggers alike:
    those the weights (or counts) were made with must agree with the config; the others keep
    their saved values, with a warning. Call _configured_settings before reading the saved cfg
    and _reconcile_settings after."""

    # Settings kept in cfg that the weights were trained for (what the outputs or the inputs mean):
    # a config that gives another value at load is refused (see _reconcile_settings).
    TRAINED_SETTINGS: Tuple[str, ...] = ()
    # Settings kept in cfg that only steer training or decoding: the saved value is used, as spaCy
    # does, with a warning when the config gives another.
    CONFIG_SETTINGS: Tuple[str, ...] = ("max_grad_norm",)

    def _configured_settings(self) -> dict:
        return {key: self.cfg[key] for key in self.TRAINED_SETTINGS + self.CONFIG_SETTINGS if key in self.cfg}

    def _reconcile_settings(self, configured: dict, where: str) -> None:
        """After spaCy read the saved cfg over the one the config built. A
        setting the weights were trained for must agree: spaCy would use the
        saved one while the config, and the scorer built from it, say the
        other (a tagger loaded with token_attr = "pos" wrote tags and was
        scored on POS, 0.0). Any other setting keeps its saved value, as in
        spaCy's own components (the config may be the stale one: a value set
        on pipe.cfg before saving is not written to config.cfg), but no
        longer silently: a warning names what differs."""
        for key in self.TRAINED_SETTINGS:
            if key in configured and key in self.cfg and self.cfg[key] != configured[key]:
                raise ValueError(
                    f"[{self.name}] {key} is {configured[key]!r} in the config, but the weights in {where} were "
                    f"trained with {self.cfg[key]!r}; restore it in config.cfg (or train for {configured[key]!r})"
                )
        differing = [f"{key} is {configured[key]!r} in the config, {self.cfg[key]!r} saved" for key in self.CONFIG_SETTINGS
                     if key in configured and key in self.cfg and self.cfg[key] != configured[key]
                     and _first_time((self.name, where, key))]
        if differing:
            warnings.warn(
                f"[{self.name}] the component saved in {where} keeps its own settings, not the config's "
                f"({'; '.join(differing)}); set pipe.cfg[...] on the loaded component to change one",
                stacklevel=3,
            )


def leaf_names(model: Model) -> List[str]:
    """The names of the model's layers that hold no other layers, in walk order."""
    return [node.name for node in model.walk() if not node.layers]


class NeuralPipe(SavedSettings):
    """Put before the spaCy pipe class: `class RNNTagger(NeuralPipe, Tagger)`.

    A subclass defines `_init_labels(get_examples, labels)`, `_n_outputs()`
    (the output width its labels need), `get_loss` and `set_annotations`,
    and `_predict_batch` unless the spaCy pipe class's predict does; it may
    define `_model_inputs` (default: the predicted docs).

    - initialize: labels, then the encoder's word vocabulary from the whole
      training corpus (one line printed per encoder), then the model on a
      10-doc sample.
    - predict: docs are processed in groups of at most `max_batch_tokens`
      (padded) tokens, so a large batch or a very long doc never makes a
      (n_docs, longest doc, n_tags) array. A doc is never split: the
      recurrent layers read each doc whole (a bidirectional model needs the
      right context), so the results do not depend on the grouping and
      memory grows linearly with the longest doc.
    - predict and update hold the model's lock (see `model_lock`), so a
      pipeline can be shared between threads; their calls run one at a time.
      Both apply the process's torch thread policy (spacy_rnn.runtime).
    - update: a NaN or infinite loss raises a ValueError naming the component
      before any gradient is applied. finish_update: a non-finite gradient
      norm discards the gradients and raises. Either way the weights are not
      changed by that update. A component with int8 weights (spacy_rnn
      quantize, load_int8) refuses update, rehearse and finish_update with a
      ValueError naming it, before anything is computed.
    - from_disk/from_bytes: see the module docstring.
    """

    max_batch_tokens = 20_000
    # initialize chooses the encoder's word vocabulary itself (init_word_vocabularies skips it).
    chooses_word_vocab = True

    def _n_outputs(self) -> int:
        raise NotImplementedError

    @contextmanager
    def memory_zone(self, mem=None) -> Iterator[None]:
        """spaCy's nlp.memory_zone() enters this for every component that has
        one: when the zone ends, the encoder forgets the words it cached (by
        their strings, which the zone frees), so that memory does not grow
        from zone to zone (models.featurize.forget_words)."""
        try:
            yield
        finally:
            forget_words(self.model)

    def _init_labels(self, get_examples: Callable[[], Iterable[Example]], labels) -> None:
        raise NotImplementedError

    def initialize(self, get_examples: Callable[[], Iterable[Example]], *, nlp=None, labels=None) -> None:
        refuse_int8_training(self.name, self.model)  # it would draw new float weights under the int8 marks
        require_examples(self.name, get_examples)
        validate_get_examples(get_examples, f"{type(self).__name__}.initialize")
        self._init_labels(get_examples, labels)
        if nlp is None or not takes_pretrained_vocab(nlp, self.name, self.model):
            report_word_vocab(self.name, init_word_vocab(self.model, (eg.x for eg in get_examples())))
        n_outputs = self._n_outputs()
        output = self.model.get_ref("output_layer") if self.model.has_ref("output_layer") else self.model
        if output.has_dim("nO") is True and output.get_dim("nO") != n_outputs:
            raise ValueError(
                f"[{self.name}] the model's nO is {output.get_dim('nO')}, but the component has {n_outputs} "
                f"outputs (labels: {', '.join(map(repr, self.labels))}): leave nO = null in the config to take it "
                "from the labels"
            )
        self._init_model(list(islice(get_examples(), 10)))
        self.model.attrs[TRAINED_LABELS] = list(self.labels)

    def _init_model(self, examples: List[Example]) -> None:
        """Initialize the model on a sample of examples; by default one output row per token."""
        doc_sample = [eg.x for eg in examples]
        n_outputs = self._n_outputs()
        self.model.initialize(X=doc_sample, Y=[self.model.ops.alloc2f(len(doc), n_outputs) for doc in doc_sample])

    def predict(self, docs):
        apply_thread_policy()
        docs = list(docs)
        results = [None] * len(docs)
        with model_lock(self):
            for group in token_budget_groups([len(doc) for doc in docs], self.max_batch_tokens):
                for i, result in zip(group, self._predict_batch([docs[i] for i in group])):
                    results[i] = result
        return results

    def _predict_batch(self, docs):
        """Predict one bounded group of docs; by default the pipe class's predict."""
        return super().predict(docs)

    def _model_inputs(self, examples: List[Example]) -> list:
        return [eg.predicted for eg in examples]

    def update(self, examples: Iterable[Example], *, drop: float = 0.0, sgd=None, losses: Optional[dict] = None):
        """Learn from a batch of examples; with `sgd` (an optimizer, not None
        or False) also apply the step. Returns the losses dict."""
        refuse_int8_training(self.name, self.model)
        apply_thread_policy()
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, f"{type(self).__name__}.update")
        with model_lock(self):
            inputs = self._model_inputs(examples)
            if not any(len(x) for x in inputs):
                return losses
            set_dropout_rate(self.model, drop)
            outputs, backprop = self.model.begin_update(inputs)
            loss, d_outputs = self.get_loss(examples, outputs)
            if not math.isfinite(loss):
                raise diverged(self.name, f"the loss is {loss}")
            backprop(d_outputs)
            if sgd not in (None, False):
                self.finish_update(sgd)
            losses[self.name] += loss
        return losses

    def rehearse(self, examples: Iterable[Example], *, sgd=None, losses: Optional[dict] = None, **config):
        """The pipe class's rehearse (nlp.rehearse), refused for int8 weights and for a model that
        listens to a shared encoder (check_rehearsable), its gradients handed on as copies
        (rehearsal_step)."""
        check_rehearsable(self.name, self.model)
        return super().rehearse(examples, sgd=rehearsal_step(sgd), losses=losses, **config)

    def finish_update(self, sgd) -> None:
        refuse_int8_training(self.name, self.model)
        with model_lock(self):
            norm = clip_global_grad_norm(self.model, self.cfg["max_grad_norm"])
            if not math.isfinite(norm):
                discard_gradients(self.model)
                raise diverged(self.name, f"the gradient norm is {norm} (NaN or inf)")
            self.model.finish_update(sgd)
            if not all_weights_finite(self.model):
                # Finite gradients can still overflow the weights (a huge learning rate).
                raise ValueError(
                    f"[{self.name}] this update made weights NaN or infinite: training diverged (the "
                    "learning rate is too high?). The model in memory is unusable; a model saved before "
                    "(e.g. spacy train's model-best) is not affected."
                )

    def _check_labels_match(self, where: str) -> None:
        if not self.model.has_ref("output_layer"):
            return
        layer = self.model.get_ref("output_layer")
        if layer.has_dim("nO") is not True:
            return
        n_weights, n_labels = layer.get_dim("nO"), self._n_outputs()
        if n_weights != n_labels:
            raise ValueError(
                f"[{self.name}] the labels in {where} do not match the weights: the labels need "
                f"{n_labels} outputs, the weights have {n_weights}"
            )

    def _check_layers(self, built: List[str], where: str) -> None:
        """Thinc reads the saved layer names over those of the model the
        config built, and checks only that the layers are as many: layers of
        the same shapes in another order (rnn_textcat's pooling ["max",
        "mean"] for ["mean", "max"]) took each other's weights without a word.
        Only the leaves are compared (`built`: leaf_names before the load): a
        combinator's name is given once, when it is built, from its layers' names
        then, so after nlp.replace_listeners the saved chain is still called
        'tok2vec-listener>>...' where the config spaCy rewrote builds it from the
        encoder's layers."""
        loaded = leaf_names(self.model)
        differing = next(((b, l) for b, l in zip(built, loaded) if b != l), None)
        if differing is not None:
            raise ValueError(
                f"[{self.name}] the config builds the layer {differing[0]!r} where the weights in {where} have "
                f"{differing[1]!r}; restore the model's settings (e.g. the order of pooling) in config.cfg"
            )

    def from_disk(self, path, *, exclude=tuple()):
        path = ensure_path(path)
        if "cfg" not in exclude:
            read_json_file(self.name, path / "cfg")
        if "model" not in exclude:
            require_file(self.name, path / "model")
        model_file = path / "model"
        return self._load_checked(lambda: super(NeuralPipe, self).from_disk(path, exclude=exclude), str(path),
                                  model_file, lambda: model_file.read_bytes() if model_file.is_file() else b"")

    def from_bytes(self, bytes_data, *, exclude=tuple()):
        where = "the bytes given to from_bytes"
        return self._load_checked(lambda: super(NeuralPipe, self).from_bytes(bytes_data, exclude=exclude), where,
                                  where, lambda: self._model_bytes(bytes_data))

    def _load_checked(self, load: Callable[[], object], where: str, model_where: Union[str, Path],
                      saved_model: Callable[[], bytes]):
        """from_disk's and from_bytes's load (`load`, the spaCy pipe class's), then the checks:
        a failed load names the shape settings that differ (saved_model: the saved model's bytes)
        or the file; a loaded one has its settings, layers, labels and encoder checked (`where`)."""
        configured = self._configured_settings()
        built = leaf_names(self.model)
        settings = built_settings(self.model)
        try:
            load()
        except Exception as err:
            self._refuse_settings(settings, saved_model(), str(model_where))
            raise load_error(self.name, model_where, err) from None
        self._reconcile_settings(configured, where)
        self._check_layers(built, where)
        self._check_loaded(where)
        return self

    def _refuse_settings(self, built: List[Dict[str, object]], model_bytes: bytes, where: str) -> None:
        """After a failed load: if the config's model settings that fix weight shapes (width, depth,
        rows, ...) differ from those the saved weights were built with, say which, rather than
        Thinc's or torch's shape error naming neither."""
        differences = settings_differences(built, model_bytes)
        if differences:
            raise ValueError(
                f"[{self.name}] the config's model settings are not those the weights in {where} were trained "
                f"with: {'; '.join(differences)}; restore them in config.cfg"
            ) from None

    @staticmethod
    def _model_bytes(bytes_data: bytes) -> bytes:
        """The model's part of a component's to_bytes (spaCy's util.to_bytes: a msgpack map), or b""."""
        try:
            return srsly.msgpack_loads(bytes_data).get("model", b"")
        except (ValueError, TypeError, AttributeError):
            return b""

    def _check_loaded(self, where: str) -> None:
        """Refuse a loaded component whose settings disagree with what its
        weights were trained with: the label count and order, and the
        encoder's feature layout. Pipelines saved before these were recorded
        are checked for what they hold."""
        self._check_labels_match(where)
        trained = self.model.attrs.get(TRAINED_LABELS)
        if trained is not None and list(trained) != list(self.labels):
            changed = next(i for i, (a, b) in enumerate(zip(trained, self.labels)) if a != b) if len(trained) == len(self.labels) else None
            detail = f"label {changed} is {self.labels[changed]!r}, trained as {trained[changed]!r}" if changed is not None else (
                f"{len(self.labels)} labels, trained with {len(trained)}")
            raise ValueError(
                f"[{self.name}] the labels in {where} are not those the weights were trained with ({detail}); "
                "restore the component's cfg as it was saved"
            )
        try:
            check_feature_layout(self.model)
        except FeatureLayoutError as err:
            raise ValueError(
                f"[{self.name}] the config's encoder settings are not those the weights in {where} were "
                f"trained with: {err}; restore them in config.cfg"
            ) from None
        differences = structure_differences(self.model)
        if differences:
            raise ValueError(
                f"[{self.name}] the config's model settings are not those the weights in {where} were trained "
                f"with: {'; '.join(differences)}; restore them in config.cfg"
            )
        fit_word_tables(self.model)
