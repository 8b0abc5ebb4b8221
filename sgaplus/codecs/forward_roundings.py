"""Every rounding a model's forward performs, wherever it is written, relaxed in a relaxed pass of the generic adapter
(docs/codecs.md, "How a pass runs").

A model rounds with torch.round or Tensor.round: in a module-level function, a method of a helper object, a
lambda, or an entropy model's quantize of any class. `RelaxedRoundings`, a TorchFunctionMode active for the pass,
gives each such call the pass's shared relaxed sample of its argument (the centred value, shared_samples.py). A
straight-through rounding built around it, `(round(v) - v).detach() + v` or `round(v) - v.detach() + v`, must pass
the sample's gradient, not the identity's: so within the pass a detach is the identity for a tensor computed from a
sample and for a value that was rounded (the model's weights are frozen; only the latents carry gradients, and a
forward detaches them for a straight-through rounding).
"""
import weakref

import torch
from torch.overrides import TorchFunctionMode

ROUNDINGS = (torch.round, torch.Tensor.round)
DETACHES = (torch.Tensor.detach, torch.detach)


def tensors_in(args):
    """The tensors among args, and inside lists and tuples among them (torch.cat's)."""
    for arg in args:
        if isinstance(arg, torch.Tensor):
            yield arg
        elif isinstance(arg, (list, tuple)):
            yield from (item for item in arg if isinstance(item, torch.Tensor))


class RelaxedRoundings(TorchFunctionMode):
    """`with RelaxedRoundings(shared):` torch.round(v) and v.round() (to integers) give shared(v), the pass's sample
    of v (a tensor of their own: the model may change it in place); detach is the identity for a tensor marked as
    computed from a sample or rounded. Marks follow every torch operation."""

    def __init__(self, shared):
        super().__init__()
        self.shared = shared
        self.marked = {}  # id -> weak reference: tensors computed from a sample, and rounded values

    def mark(self, tensor):
        self.marked[id(tensor)] = weakref.ref(tensor)

    def is_marked(self, tensor):
        found = self.marked.get(id(tensor))
        return found is not None and found() is tensor

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in ROUNDINGS and not kwargs.get("decimals"):
            self.mark(args[0])
            sample = self.shared(args[0]).clone()
            self.mark(sample)
            return sample
        if func is torch.Tensor.round_ and not kwargs.get("decimals"):
            self.mark(args[0].copy_(self.shared(args[0].clone())))
            return args[0]
        if func in DETACHES and self.is_marked(args[0]):
            return args[0]
        result = func(*args, **kwargs)
        if any(self.is_marked(arg) for arg in tensors_in(args)):
            for tensor in tensors_in(result if isinstance(result, (list, tuple)) else (result,)):
                self.mark(tensor)
        return result


class KeptRoundings(TorchFunctionMode):
    """`with KeptRoundings():` torch.round(v) and v.round() give v: in a pass whose latents were substituted already
    rounded, the model's roundings keep them (on the integer grid or around its means: the same values)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in ROUNDINGS and not kwargs.get("decimals"):
            return args[0]  # kept
        return func(*args, **kwargs)
