"""Global-norm gradient clipping across Thinc parameters and wrapped torch modules.

Thinc's optimizer ``grad_clip`` clips each parameter on its own; the norm-clipping
rule of Pascanu et al. (2013) rescales all gradients together so that their joint
L2 norm is at most ``max_norm``. This must run after backprop and before the
optimizer step.
"""
import math

from thinc.api import Model

from .wrappers import torch_modules


def global_grad_norm(model: Model) -> float:
    """The L2 norm of all gradients currently held by the model and its torch shims."""
    total = 0.0
    for grad in _thinc_grads(model):
        total += float((grad * grad).sum())
    for grad in _torch_grads(model):
        total += float(grad.detach().pow(2).sum())
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
        for grad in _torch_grads(model):
            grad.mul_(scale)
    return norm


def _thinc_grads(model: Model):
    for node in model.walk():
        for name in node.param_names:
            if node.has_grad(name):
                yield node.get_grad(name)


def _torch_grads(model: Model):
    for module in torch_modules(model):
        for param in module.parameters():
            if param.grad is not None:
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
    """Whether every parameter of the model and its torch modules is finite."""
    for node in model.walk():
        for name in node.param_names:
            if node.has_param(name) and not node.ops.xp.isfinite(node.get_param(name)).all():
                return False
    for module in torch_modules(model):
        for param in module.parameters():
            if not bool(param.detach().isfinite().all()):
                return False
    return True
