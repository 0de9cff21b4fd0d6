"""int8 weights for CPU prediction: torch's dynamic quantization of every
`nn.Linear` inside a pipeline's torch modules (weights stored as int8,
activations quantized on the fly), and the same for a component's output
layer if it is a Thinc Softmax (models.ops.Int8AffineOps; its weights are saved in
float32 and quantized on first use; rnn_ner's and rnn_textcat_multilabel's are a
Linear of a few labels and stay float32). The linear-recurrence cells (mingru,
minlstm) keep all their weights in `nn.Linear` layers, so they gain the most;
torch's `nn.LSTM`/`nn.GRU` are left as they are (quantize_dynamic returns them
unchanged in torch 2.13), and so are embeddings and the character CNN (its
product in int8 made the whole tagger slower here: dynamic quantization
quantizes the large tensor of character windows on every call, which cost more
than the int8 product saved; torch 2.13, one thread, EWT test).

Three ways in:
- `quantize_pipeline(nlp)`: quantize a loaded pipeline in memory (e.g. right
  after `spacy.load`); `spacy_rnn.load_int8(path)` does both. Its config then
  names the callback below, so `nlp.to_disk` writes an int8 copy.
- `python -m spacy_rnn quantize MODEL OUTPUT`: write an int8 copy. As
  above, its config names the callback, so `spacy.load(OUTPUT)` builds the quantized
  modules before reading their int8 weights; the copy loads and saves like
  any pipeline. save_int8 writes it whole or not at all, and only where
  nothing is lost (check_int8_output).
- `[nlp.after_pipeline_creation] @callbacks = "spacy_rnn.quantize_int8.v1"`:
  that callback (run by spaCy after the components are built and before their
  weights are read). A callback the pipeline had there is kept as its `first`
  argument, run before quantizing.

The modules are swapped in place (quantize_dynamic(..., inplace=True)), so the
Thinc wrappers keep the same module object. int8 is for prediction: a
quantized component refuses to be trained further (NeuralPipe.update reads
QUANTIZED_ATTR, which quantize_pipeline sets on its model).
"""
import warnings
from pathlib import Path
from typing import Callable, List, Optional, Union

from spacy.language import Language
from spacy.util import registry
from thinc.api import Model
from torch import nn

from ..models.ops import Int8AffineOps, TorchGemmOps
from ..models.pytorch.int8 import quantize_linears
from ..models.pytorch.linear_recurrence import LinearRecurrence
from ..models.wrappers import QUANTIZED_ATTR, AveragingPyTorchShim, torch_modules


def prepare_for_int8(module: nn.Module) -> None:
    """Put a module in prediction mode with each linear-recurrence layer's
    projection split into one nn.Linear per part, both directions in each, so
    that an int8 quantizer converts one product per part."""
    module.eval()
    for stack in module.modules():
        if isinstance(stack, LinearRecurrence):
            stack.split_projections()


def quantize_modules(modules: List[nn.Module]) -> int:
    """Quantize the nn.Linear layers of the modules in place; returns how many were converted."""
    converted = 0
    for module in modules:
        prepare_for_int8(module)
        before = sum(isinstance(m, nn.Linear) for m in module.modules())
        quantize_linears(module)
        converted += before - sum(isinstance(m, nn.Linear) for m in module.modules())
    return converted


def quantize_output_layer(model: Model) -> bool:
    """Give the model's output layer (its "output_layer" ref) int8 weights through
    Int8AffineOps if it is a Thinc Softmax on TorchGemmOps (rnn_tagger's, rnn_textcat's: it
    computes through ops.affine); returns whether it did. A Thinc Linear (rnn_ner's emissions,
    rnn_textcat_multilabel's scores, a few labels each) multiplies through ops.gemm, which also
    serves the backward pass, and keeps float32 weights; so does any output layer on a GPU."""
    if not model.has_ref("output_layer"):
        return False
    layer = model.get_ref("output_layer")
    if type(layer.ops) is not TorchGemmOps or layer.name != "softmax":
        return False
    layer.ops = Int8AffineOps()
    return True


CALLBACK = "spacy_rnn.quantize_int8.v1"


def quantize_pipeline(nlp: Language, *, warn: bool = True) -> Language:
    """Give the torch modules of spacy-rnn's architectures in the pipeline's
    components int8 Linear weights, and their softmax output layers int8 weights,
    in place (other libraries' modules are left as they are). If it quantized
    anything, the pipeline's config names the callback below, so that
    nlp.to_disk writes a copy that spacy.load reads as int8. `warn`: name each
    spacy-rnn component left with float32 weights only (the callback, run at
    every load of a quantized copy, does not repeat it)."""
    todo = [(name, pipe.model, own_modules(pipe.model)) for name, pipe in nlp.pipeline
            if hasattr(getattr(pipe, "model", None), "walk") and not pipe.model.attrs.get(QUANTIZED_ATTR)]
    for name, _, modules in todo:  # all checked before any is changed
        _check_on_cpu(name, modules)
    quantized = False
    for name, model, modules in todo:
        converted = quantize_modules(modules) if modules else 0
        # a component listening to a shared encoder has no torch modules of its own, only an output layer
        if quantize_output_layer(model) or converted:
            model.attrs[QUANTIZED_ATTR] = True
            for node in model.walk():  # the torch wrappers too: they refuse training whoever holds them
                if any(isinstance(shim, AveragingPyTorchShim) for shim in node.shims):
                    node.attrs[QUANTIZED_ATTR] = True
            quantized = True
        elif modules and warn:
            warnings.warn(
                f"[{name}] keeps float32 weights: nothing in it takes int8 ones (its recurrent cells are "
                "torch's LSTM, GRU or RNN, which torch's int8 layers leave as they are, unlike mingru and "
                "minlstm cells, and its output layer is not a softmax)",
                stacklevel=2,
            )
    if quantized:
        _name_callback(nlp)
    return nlp


def has_int8_weights(nlp: Language) -> bool:
    """Whether any component of the pipeline has int8 weights (quantize_pipeline's mark)."""
    return any(getattr(getattr(pipe, "model", None), "attrs", {}).get(QUANTIZED_ATTR) for _, pipe in nlp.pipeline)


def own_modules(model: Model) -> List[nn.Module]:
    """The torch modules of spacy-rnn's architectures in the model: another
    library's (spaCy's TorchBiLSTMEncoder, spacy-transformers) are left as they are."""
    return torch_modules(model, AveragingPyTorchShim)


def _check_on_cpu(name: str, modules: List[nn.Module]) -> None:
    """int8 weights run on the CPU only (torch's quantized kernels): refuse a
    component whose weights are elsewhere (e.g. after spacy.require_gpu())."""
    devices = sorted({str(p.device) for module in modules for p in module.parameters()} - {"cpu"})
    if devices:
        raise ValueError(
            f"[{name}] int8 weights are for prediction on the CPU, and this component's weights are on "
            f"{', '.join(devices)}. Load the pipeline on the CPU to quantize it (without spacy.require_gpu(), "
            "or after spacy.require_cpu())."
        )


def _name_callback(nlp: Language) -> None:
    """Set the config's [nlp.after_pipeline_creation] to the callback below,
    keeping a callback it had there as the one to run first."""
    config = nlp.config
    previous = config["nlp"].get("after_pipeline_creation")
    if previous and previous.get("@callbacks") == CALLBACK:
        return
    config["nlp"]["after_pipeline_creation"] = {"@callbacks": CALLBACK, **({"first": previous} if previous else {})}
    nlp.config = config


@registry.callbacks(CALLBACK)
def make_quantize_int8(first: Optional[Callable[[Language], Language]] = None) -> Callable[[Language], Language]:
    """An [nlp.after_pipeline_creation] callback: int8 weights for every
    component's torch modules, before the weights are loaded. `first`: the
    callback the pipeline had there before it was quantized, run before."""
    if first is None:
        return lambda nlp: quantize_pipeline(nlp, warn=False)
    return lambda nlp: quantize_pipeline(first(nlp), warn=False)


def load_int8(path, **kwargs) -> Language:
    """spacy.load(path, **kwargs), then int8 weights (quantize_pipeline). Warns if
    nothing in the pipeline takes int8 weights (the `quantize` command refuses it)."""
    import spacy

    nlp = quantize_pipeline(spacy.load(path, **kwargs))
    if not has_int8_weights(nlp):
        warnings.warn(f"nothing in {path} takes int8 weights: the pipeline is loaded with float32 ones", stacklevel=2)
    return nlp


def save_int8(nlp: Language, output_dir: Union[str, Path], *, force: bool = False) -> None:
    """Write a quantized pipeline (quantize_pipeline's) whole or not at all,
    where check_int8_output allows it (the pipeline's own directory, nlp.path,
    is the source it must stay out of)."""
    from ..files import atomic_output, recover

    output_dir = Path(output_dir)
    recover(output_dir)  # finish a swap a crash interrupted, so the check sees what would be replaced
    check_int8_output(output_dir, nlp.path, force=force)
    with atomic_output(output_dir) as tmp:
        nlp.to_disk(tmp)


def check_int8_output(output_dir: Union[str, Path], source: Optional[Union[str, Path]], *, force: bool = False) -> None:
    """Refuse, with a ValueError naming OUTPUT, a place where writing the
    int8 copy would lose something: an existing file or symbolic link, a
    directory inside the source pipeline's directory or holding it (the
    copy would replace part of it, or all of it), a non-empty directory
    unless `force`, and even with `force` a directory that is not a spaCy
    pipeline (no config.cfg). A missing or empty directory is written."""
    output_dir = Path(output_dir)
    if output_dir.is_symlink():
        raise ValueError(f"OUTPUT {output_dir} is a symbolic link: give the directory itself, or another OUTPUT")
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"OUTPUT {output_dir} is a file, not a directory: the int8 copy is not written over it; choose another OUTPUT")
    if source is not None:
        _check_apart(output_dir, Path(source))
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return
    if not force:
        raise ValueError(
            f"OUTPUT {output_dir} is a directory that is not empty; choose another OUTPUT, or add --force to "
            "replace it if it holds a spaCy pipeline (an earlier int8 copy)"
        )
    if not (output_dir / "config.cfg").is_file():
        raise ValueError(
            f"OUTPUT {output_dir} holds no spaCy pipeline (no config.cfg): --force replaces only a pipeline "
            "directory, never other files; choose another OUTPUT"
        )


def _check_apart(output_dir: Path, source: Path) -> None:
    """Neither path is the other or inside it (compared resolved, so through
    symbolic links and relative paths)."""
    output, model = output_dir.resolve(), source.resolve()
    if output == model:
        raise ValueError(f"OUTPUT {output_dir} is the pipeline being quantized ({source}); choose another OUTPUT")
    if model in output.parents:
        raise ValueError(f"OUTPUT {output_dir} is inside the pipeline being quantized ({source}); choose an OUTPUT outside it")
    if output in model.parents:
        raise ValueError(f"OUTPUT {output_dir} holds the pipeline being quantized ({source}); choose an OUTPUT outside it")
