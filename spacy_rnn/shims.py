"""Thinc's PyTorch wrapper with parameter averaging that takes effect.

With `use_averages = true` in a `spacy train` config, Thinc's optimizer keeps
a running average of every parameter, and spaCy evaluates and saves the model
inside `nlp.use_params(optimizer.averages)`. Thinc 8.3's `PyTorchShim` stores
those averages under the key `(shim.id, parameter name)` but its `use_params`
looks for string keys `"pytorch_{id}_{name}"`, so for a PyTorch model the
averages are computed and then silently never used. `AveragingPyTorchShim`
reads the keys the optimizer writes (and still the string ones).
"""
import contextlib
from typing import Callable, Dict

from thinc.api import Model, PyTorchShim, xp2torch
from thinc.layers.pytorchwrapper import forward as pytorch_forward
from torch import nn


class AveragingPyTorchShim(PyTorchShim):
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
