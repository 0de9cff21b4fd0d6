"""Global-norm gradient clipping across Thinc parameters and wrapped torch modules.

Thinc's optimizer ``grad_clip`` clips each parameter on its own; the norm-clipping
rule of Pascanu et al. (2013) rescales all gradients together so that their joint
L2 norm is at most ``max_norm``. This must run after backprop and before the
optimizer step.

The torch side uses torch's own utilities (``get_total_norm`` and
``clip_grads_with_norm_``, foreach kernels: no tensor the size of a gradient
is allocated); the Thinc side, a few small arrays, sums squares by a dot
product. Both run every step, so neither builds a temporary per element.
"""
import math

import torch
from thinc.api import Model
from torch.nn.utils import clip_grads_with_norm_, get_total_norm

from .wrappers import torch_modules


def global_grad_norm(model: Model) -> float:
    """The L2 norm of all gradients currently held by the model and its torch shims."""
    total = 0.0
    for grad in _thinc_grads(model):
        flat = grad.ravel()
        total += float(model.ops.xp.dot(flat, flat))
    grads = list(_torch_grads(model))
    if grads:
        total += float(get_total_norm(grads, 2.0)) ** 2
    return math.sqrt(total)


def clip_global_grad_norm(model: Model, max_norm: float) -> float:
    """Rescale every gradient of the model so their joint L2 norm is at most
    max_norm. Returns the norm before clipping. max_norm <= 0 disables clipping."""
    norm = global_grad_norm(model)
    if max_norm > 0 and norm > max_norm:
        scale = max_norm / (norm + 1e-6)
        for node in model.walk():
            for name in node.param_names:
                if node.has_grad(name):
                    node.set_grad(name, node.get_grad(name) * scale)
        parameters = list(_torch_params_with_grad(model))
        if parameters:
            clip_grads_with_norm_(parameters, max_norm, torch.tensor(norm + 1e-6))
    return norm


def _thinc_grads(model: Model):
    for node in model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                yield node.get_grad(name)


def _torch_params_with_grad(model: Model):
    for module in torch_modules(model):
        for param in module.parameters():
            if param.grad is not None:
                yield param


def _torch_grads(model: Model):
    for param in _torch_params_with_grad(model):
        yield param.grad


def discard_gradients(model: Model) -> None:
    """Set every gradient of the model to zero, e.g. after a non-finite one was
    found, so that the next optimizer step does not apply it. Filled with
    zeros, not multiplied by zero: NaN * 0 is NaN."""
    for node in model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                grad = node.get_grad(name)
                node.set_grad(name, node.ops.alloc(grad.shape, dtype=grad.dtype))
    for grad in _torch_grads(model):
        grad.zero_()


def all_weights_finite(model: Model) -> bool:
    """Whether every parameter of the model and its torch modules is finite.
    A NaN or infinite element makes its array's sum NaN or infinite, so the
    sum answers for the common all-finite case without a mask the size of
    the array; only a non-finite sum (which finite elements can also give,
    by overflowing) is checked element by element."""
    for node in model.walk():
        for name in node.param_names:
            if node.has_param(name):
                param = node.get_param(name)
                xp = node.ops.xp
                if not math.isfinite(float(param.sum())) and not xp.isfinite(param).all():
                    return False
    for module in torch_modules(model):
        for param in module.parameters():
            data = param.detach()
            if not math.isfinite(float(data.sum())) and not bool(data.isfinite().all()):
                return False
    return True
