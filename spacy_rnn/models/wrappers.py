"""Thinc glue for the torch modules: the PyTorch shim, and the converters that
turn a TokenBatch (or per-doc word ids) into torch inputs and the torch outputs
back into one array per Doc. All access to the wrapped torch modules goes
through the functions here.

Parameter averaging that takes effect:

With `use_averages = true` in a `spacy train` config, Thinc's optimizer keeps
a running average of every parameter, and spaCy evaluates and saves the model
inside `nlp.use_params(optimizer.averages)`. Thinc 8.3's `PyTorchShim` stores
those averages under the key `(shim.id, parameter name)` but its `use_params`
looks for string keys `"pytorch_{id}_{name}"`, so for a PyTorch model the
averages are computed and then silently never used. `AveragingPyTorchShim`
reads the keys the optimizer writes (and still the string ones).
"""
import contextlib
import io
from typing import Callable, Dict, List, Sequence, Tuple, Type

import numpy
import srsly
import torch
from thinc.api import ArgsKwargs, Model, PyTorchShim, Shim, deserialize_attr, serialize_attr, torch2xp, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from thinc.types import Floats1d, Floats2d, Ints1d
from torch import nn

from .featurize import TokenBatch
from .lm_vocab import EOS_ID
from .pytorch import RNNLanguageModel, SequenceLogProbs, TokenEncoder, sample_words
from .pytorch.int8 import int8_loading


class AveragingPyTorchShim(PyTorchShim):
    def copy(self) -> "AveragingPyTorchShim":
        """A deep copy with its own id. Thinc's Shim.copy keeps the id, and the
        optimizer keys a torch parameter's state (Adam's moments, averages) by
        (shim id, name): a copy made by nlp.replace_listeners would share that
        state with the original. The new id is taken the way Shim.__init__ does."""
        with int8_loading():  # int8 weights are packed anew in the copy
            copied = super().copy()
        with Shim.global_id_lock:
            Shim.global_id += 1
            copied.id = Shim.global_id
        return copied

    def __getstate__(self) -> Dict:
        """Pickled (pickle.dumps, nlp.pipe's spawned workers), the torch module
        goes as torch.save's bytes: torch's multiprocessing pickler would
        share each tensor's storage with the other process instead, which
        int8 weights (torch's dynamically quantized Linear) do not support: a
        spawned worker of an int8 pipeline failed to start ("bad value(s) in
        fds_to_keep") or died unpickling while the parent waited."""
        state = self.__dict__.copy()
        buffer = io.BytesIO()
        torch.save(self._model, buffer)
        state["_model"] = buffer.getvalue()
        return state

    def __setstate__(self, state: Dict) -> None:
        # weights_only=False: the module's classes are unpickled too; the bytes are ours (__getstate__)
        with int8_loading():
            state["_model"] = torch.load(io.BytesIO(state["_model"]), weights_only=False)
        self.__dict__.update(state)

    def from_bytes(self, bytes_data: bytes) -> "AveragingPyTorchShim":
        with int8_loading():  # an int8 pipeline's weights
            return super().from_bytes(bytes_data)

    @contextlib.contextmanager
    def use_params(self, params: Dict):
        state = {}
        prefix = f"pytorch_{self.id}_"
        for name, _ in self._model.named_parameters():
            value = params.get((self.id, name), params.get(prefix + name))
            if value is not None:
                state[name] = xp2torch(value, device=self.device)
        if not state:
            yield
            return
        backup = {name: tensor.clone() for name, tensor in self._model.state_dict().items()}
        self._model.load_state_dict(state, strict=False)
        try:
            yield
        finally:
            self._model.load_state_dict(backup)


def torch_wrapper(module: nn.Module, convert_inputs: Callable, convert_outputs: Callable) -> Model:
    """`PyTorchWrapper_v2(module, convert_inputs, convert_outputs)`, with the
    averaging shim; same forward pass, same serialization."""
    return Model(
        "pytorch",
        pytorch_forward,
        attrs={"convert_inputs": convert_inputs, "convert_outputs": convert_outputs},
        shims=[AveragingPyTorchShim(module)],
        dims={"nI": None, "nO": None},
    )


# Set by spacy_rnn.pipeline.quantize on a component's model given int8 weights and on the torch
# wrappers in it: it predicts only (the pipes' refuse_int8_training; refuse_int8 here).
QUANTIZED_ATTR = "spacy_rnn_int8"


def has_int8_mark(model: Model) -> bool:
    """Whether a node of the model carries QUANTIZED_ATTR (the component's model, or a torch wrapper
    in it: an int8 encoder copied into a component by nlp.replace_listeners too)."""
    return any(node.attrs.get(QUANTIZED_ATTR) for node in model.walk())


def refuse_int8(model: Model) -> None:
    """Raise a ValueError if the model holds torch modules with int8 weights (has_int8_mark): for a
    host that is not a spacy-rnn pipe, e.g. spaCy's tok2vec holding a spacy-rnn encoder."""
    if has_int8_mark(model):
        raise ValueError(
            f"the spacy-rnn model {model.name!r} has int8 weights (spacy_rnn quantize / load_int8): it predicts "
            "only; train the float pipeline, or leave its component out of the update ([training] frozen_components)"
        )


def _convert_inputs(model: Model, batch: TokenBatch, is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    if is_train:
        refuse_int8(model)
    device = model.shims[0].device
    args = ArgsKwargs(
        args=(
            xp2torch(batch.word_ids, device=device),
            xp2torch(batch.hashes.astype("int64"), device=device),
            xp2torch(batch.word_index, device=device),
            xp2torch(batch.code_points, device=device),
            # packing wants lengths on the CPU: xp2torch without a device puts them on Thinc's default
            # device, a GPU after spacy.require_gpu()
            xp2torch(batch.lengths, device=torch.device("cpu")),
        ),
        kwargs={},
    )
    # Integer inputs have no gradient.
    return args, lambda d_args: []


def _convert_outputs(model: Model, inputs_outputs, is_train: bool) -> Tuple[List[Floats2d], Callable]:
    batch, Y_torch = inputs_outputs
    Y = torch2xp(Y_torch, ops=model.ops)  # (n_tokens, width)
    ends = numpy.cumsum(batch.lengths)[:-1].tolist()
    outputs = model.ops.xp.split(Y, ends)

    def backprop(d_outputs: List[Floats2d]) -> ArgsKwargs:
        dY = model.ops.xp.concatenate(d_outputs) if d_outputs else Y * 0
        dY_torch = xp2torch(dY.reshape(Y.shape), device=Y_torch.device)
        return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": dY_torch})

    return outputs, backprop


def wrap_token_encoder(encoder: TokenEncoder) -> Model[TokenBatch, List[Floats2d]]:
    """Wrap a TokenEncoder so that it reads a TokenBatch and returns one
    (n_tokens, width) array per doc."""
    model = torch_wrapper(encoder, convert_inputs=_convert_inputs, convert_outputs=_convert_outputs)
    model.set_dim("nO", encoder.output_width)
    model.attrs[STRUCTURE_ATTR] = encoder.structure()
    return model


# Marks the model RNNEncoder builds: chain(doc_features, the wrapped TokenEncoder).
TOKEN_ENCODER_ATTR = "spacy_rnn_token_encoder"


def fit_word_tables(model: Model) -> None:
    """Size the word table of every spacy_rnn token encoder in `model` to
    its word vocabulary: one row per word plus the unknown word's (rows past
    the vocabulary are never read, but their zero gradients cost every
    update). Done when an encoder is initialized (its vocabulary chosen by
    then) and when a spacy_rnn component is loaded, which fits the tables of
    pipelines saved at full size (vocab_size + 1 rows) too."""
    for node in model.walk():
        if node.attrs.get(TOKEN_ENCODER_ATTR):
            features, wrapper = node.layers[:2]
            n_rows = 1 + len(features.attrs["word_keys"])  # row 0 is the unknown word
            for module in torch_modules(wrapper):
                if isinstance(module, TokenEncoder):
                    module.fit_word_rows(n_rows)


# The language model: per-doc word ids in, per-token log-probabilities out.


def _convert_lm_inputs(model: Model, ids: List[Ints1d], is_train: bool) -> Tuple[ArgsKwargs, Callable]:
    lengths = numpy.array([len(x) for x in ids], dtype="int64")
    flat = numpy.concatenate([numpy.asarray(x, dtype="int64") for x in ids]) if ids else numpy.zeros((0,), dtype="int64")
    args = ArgsKwargs(
        args=(xp2torch(flat, device=model.shims[0].device), xp2torch(lengths, device=torch.device("cpu"))),  # lengths stay on the CPU
        kwargs={},
    )
    return args, lambda d_args: []


def _convert_lm_outputs(model: Model, inputs_outputs, is_train: bool) -> Tuple[List[Floats1d], Callable]:
    ids, Y_torch = inputs_outputs
    Y = torch2xp(Y_torch, ops=model.ops)  # (n_tokens,)
    ends = numpy.cumsum([len(x) for x in ids])[:-1].tolist()
    outputs = model.ops.xp.split(Y, ends)

    def backprop(d_outputs: List[Floats1d]) -> ArgsKwargs:
        dY = model.ops.xp.concatenate(d_outputs) if d_outputs else Y * 0
        return ArgsKwargs(args=(Y_torch,), kwargs={"grad_tensors": xp2torch(dY.reshape(Y.shape), device=Y_torch.device)})

    return outputs, backprop


def wrap_sequence_log_probs(module: SequenceLogProbs) -> Model[List[Ints1d], List[Floats1d]]:
    """Wrap a SequenceLogProbs: one int array of word ids per doc in, one
    array of log p(token | the tokens before it) per doc out."""
    model = torch_wrapper(module, convert_inputs=_convert_lm_inputs, convert_outputs=_convert_lm_outputs)
    model.attrs[STRUCTURE_ATTR] = module.structure()
    return model


# The torch module's structure() as it was built, saved with the weights (Thinc saves a model's
# attrs with them and reads them back over the ones the config built), so that loading can compare
# it with the module the config builds now: see structure_differences.
STRUCTURE_ATTR = "spacy_rnn_structure"


def structure_differences(model: Model) -> List[str]:
    """For every spacy_rnn torch wrapper in the model, the choices its
    weights were trained with (STRUCTURE_ATTR, as loaded) that its module,
    built from the config, does not have now, e.g. "cell is 'minlstm',
    trained with 'mingru'". Weights saved before this was recorded carry
    the config's own record (nothing read over it) and show no difference."""
    differences = []
    for node in model.walk():
        trained = node.attrs.get(STRUCTURE_ATTR)
        if trained is None:
            continue
        for module in torch_modules(node, AveragingPyTorchShim):
            built = module.structure()
            differences += [f"{key} is {built.get(key)!r}, trained with {value!r}"
                            for key, value in trained.items() if built.get(key) != value]
    return differences


# An architecture's settings that fix the shapes of its weights (width, depth, rows, ...), as the
# config gave them, recorded on the model it returns (record_settings) and saved with it, so that
# a load of weights trained with other settings names them rather than failing on the shapes
# (Thinc's "Attempt to change dimension", torch's "size mismatch", a layer count) or, where the
# shapes agree (a minGRU with output gates and a minLSTM without), loading and predicting wrongly.
SETTINGS_ATTR = "spacy_rnn_settings"


class ShapeSettings(dict):
    """The value of SETTINGS_ATTR: a dict, saved by Thinc as a plain map. Thinc deserializes a node's
    attrs through deserialize_attr, which dispatches on the type of the value the model was built
    with: for this type the saved settings are compared with the built ones first, and a difference
    raises a ValueError naming them, whichever component holds the model (spaCy's tok2vec too).
    Thinc reads a node's dims before its attrs, so a setting that changes a dimension of the node
    holding them (the encoder's output width) still fails on that dimension first: the pipes'
    loads (NeuralPipe) then name the settings from the saved bytes (settings_differences)."""


def record_settings(model: Model, **settings: object) -> None:
    """Record an architecture's shape settings on the model it returns (see ShapeSettings)."""
    model.attrs[SETTINGS_ATTR] = ShapeSettings(settings)


def _differences(built: Dict[str, object], saved: Dict[str, object]) -> List[str]:
    return [f"{key} is {built.get(key)!r}, trained with {value!r}" for key, value in saved.items() if built.get(key) != value]


@serialize_attr.register(ShapeSettings)
def _save_settings(_: ShapeSettings, value: ShapeSettings, name: str, model: Model) -> bytes:
    return srsly.msgpack_dumps(dict(value))


@deserialize_attr.register(ShapeSettings)
def _load_settings(built: ShapeSettings, value: bytes, name: str, model: Model) -> ShapeSettings:
    saved = srsly.msgpack_loads(value)
    differences = _differences(built, saved)
    if differences:
        raise ValueError(f"the config's settings of the model {model.name!r} are not those its weights were trained "
                         f"with: {'; '.join(differences)}; restore them in the config")
    return ShapeSettings(saved)


def built_settings(model: Model) -> List[Dict[str, object]]:
    """The settings records of the model's nodes, in walk order, as built (before a load reads the
    saved ones over them)."""
    return [dict(node.attrs[SETTINGS_ATTR]) for node in model.walk() if node.attrs.get(SETTINGS_ATTR) is not None]


def settings_differences(built: List[Dict[str, object]], model_bytes: bytes) -> List[str]:
    """The settings in `built` (built_settings of the model before loading) that differ from those
    saved in model_bytes (Thinc's Model.to_bytes), e.g. "width is 64, trained with 128". The records
    are paired in walk order; weights saved before they were recorded, or bytes Thinc cannot read,
    show no difference."""
    try:
        saved_attrs = srsly.msgpack_loads(model_bytes)["attrs"]
        saved: List[Dict[str, object]] = [srsly.msgpack_loads(attrs[SETTINGS_ATTR])
                                          for attrs in saved_attrs if SETTINGS_ATTR in attrs]
    except (ValueError, TypeError, KeyError):
        return []
    return [difference for now, was in zip(built, saved) for difference in _differences(now, was)]


def torch_modules(model: Model, shim_type: Type[PyTorchShim] = PyTorchShim) -> List[nn.Module]:
    """The torch modules wrapped anywhere in a Thinc model, each once. The
    one place that reaches into Thinc's PyTorchShim for its module.
    shim_type=AveragingPyTorchShim: only those of spacy-rnn's own
    architectures, not another library's (e.g. a spaCy or
    spacy-transformers component in the same pipeline)."""
    found: Dict[int, nn.Module] = {}
    for node in model.walk():
        for shim in node.shims:
            if isinstance(shim, shim_type):
                found.setdefault(id(shim), shim._model)
    return list(found.values())


def _lm_module(model: Model) -> SequenceLogProbs:
    for module in torch_modules(model):
        if isinstance(module, SequenceLogProbs):
            return module
    raise ValueError(f"{model.name} holds no language model")


def torch_language_model(model: Model) -> RNNLanguageModel:
    """The torch RNNLanguageModel inside a model made by spacy_rnn.RNNLanguageModel.v1."""
    return _lm_module(model).lm


def vocab_rows_in_use(model: Model) -> int:
    return int(torch_language_model(model).n_words)


def set_vocab_rows_in_use(model: Model, n_words: int) -> None:
    """Tell the model how many vocabulary rows are real words; the others get no probability."""
    lm = torch_language_model(model)
    if not 0 < n_words <= lm.vocab_size:
        raise ValueError(f"the vocabulary has {n_words} words; the model has room for 1 to {lm.vocab_size}")
    lm.n_words.fill_(n_words)


def load_language_model_state(model: Model, state_dict) -> None:
    """Copy the weights of a trained RNNLanguageModel (e.g. from spacy_rnn.training.lm.train_lm) into the model."""
    torch_language_model(model).load_state_dict(state_dict)


def sample_from_model(model: Model, prompt_ids: Sequence[int], n_words: int, *, temperature: float, seed: int, banned_ids: Sequence[int] = ()) -> List[int]:
    """Word ids sampled after the prompt (see spacy_rnn.models.pytorch.sample_words)."""
    return sample_words(
        torch_language_model(model), prompt_ids, n_words, start_id=EOS_ID, temperature=temperature, seed=seed,
        banned_ids=banned_ids,
    )
