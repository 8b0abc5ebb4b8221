"""Where a model's forward (or compress) produces its latents, whatever they are named (docs/codecs.md, "How a pass
runs"): found by recording one run on the probe image, then substituted there in every later run.

y is the 4-D tensor covering the storage of what the first call of y's entropy models takes (y itself, or the
tensor it is sliced from), the first one made (later ones are views of it); z is what z's entropy model is first
given. When a module produces it (g_a; the one module named h_a), a run skips that module. Otherwise the n-th
torch operation of the run produces it, and `OpSlots` replaces that operation's output: the analysis (or
hyper-analysis) still runs, on a blank image (or on y), only for its output to be replaced. Such a model must run
the same operations on any image of a size (no control flow on values): a run that finds another shape there is
refused.
"""
import contextlib
from dataclasses import dataclass

import torch
from torch.overrides import TorchFunctionMode

from .forward_pass import UnsupportedModel, swapped
from .forward_roundings import tensors_in


@dataclass
class Slots:
    """Where one entry point (forward or compress) produces y and z: None for its module (g_a, h_a), else the index
    of the operation (counted with g_a skipped when y comes from g_a)."""
    y_op: int = None
    z_op: int = None


class OpRecorder(TorchFunctionMode):
    """Counts the torch operations of a run and keeps each one's output tensors, in order."""

    def __init__(self):
        super().__init__()
        self.count, self.made = 0, []  # (index, tensor)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        self.made += [(self.count, tensor) for tensor in
                      tensors_in(result if isinstance(result, (list, tuple)) else (result,))]
        self.count += 1
        return result


class OpSlots(TorchFunctionMode):
    """Counts the torch operations of a run; the output of operation k becomes actions[k](output)."""

    def __init__(self, actions):
        super().__init__()
        self.count, self.actions = 0, actions

    def __torch_function__(self, func, types, args=(), kwargs=None):
        result = func(*args, **(kwargs or {}))
        action = self.actions.get(self.count)
        self.count += 1
        return result if action is None else action(result)


def holder(recorder, value, before, name):
    """(index, tensor): the first operation whose output is a 4-D tensor covering value's storage (where it was
    made; later ones are views of it, as a straight-through rounding's detach), before `before`."""
    storage = value.untyped_storage()
    found = [(index, tensor) for index, tensor in recorder.made if index < before and tensor.dim() == 4 and
             tensor.untyped_storage().data_ptr() == storage.data_ptr() and
             tensor.numel() * tensor.element_size() == storage.nbytes()]
    if not found:
        raise UnsupportedModel(f"{name} gives an entropy model a tensor that is not a part of latents it produced "
                               f"(computed from them, not sliced): register an adapter (docs/codecs.md)")
    return found[0]


def recording(function, calls, recorder):
    def recorded(value, *args, **kwargs):
        calls.append((value, recorder.count))
        return function(value, *args, **kwargs)
    return recorded


def spanning(module, spans, recorder):
    """Hooks recording (first operation, operation after the last, output) of module's first call."""
    def started(*_):
        spans.setdefault("start", recorder.count)

    def ended(_, __, output):
        if "output" not in spans:
            spans.update(end=recorder.count, output=output)
    return module.register_forward_pre_hook(started), module.register_forward_hook(ended)


def find_slots(codec, run, method):
    """The Slots of the entry point run() runs on the probe image (forward or compress: `method` names the entropy
    models' method it calls)."""
    name = type(codec.model).__name__
    recorder, calls, spans = OpRecorder(), {"y": [], "z": []}, {"g_a": {}, "h_a": {}}
    with contextlib.ExitStack() as stack:
        for module in [codec.bottleneck, *codec.y_coders]:
            found = calls["z" if module is codec.bottleneck else "y"]
            stack.enter_context(swapped(module, method, recording(getattr(module, method), found, recorder),
                                        instance=True))
        hooks = [hook for slot, module in codec.slot_modules.items() if module is not None
                 for hook in spanning(module, spans[slot], recorder)]
        stack.callback(lambda: [hook.remove() for hook in hooks])
        stack.enter_context(torch.no_grad())
        stack.enter_context(recorder)
        run()
    y_op, z_op = (producer(recorder, calls[kind], spans[module], name, method) for kind, module in
                  (("y", "g_a"), ("z", "h_a")))
    skipped = spans["g_a"]["end"] - spans["g_a"]["start"] if y_op is None else 0
    return Slots(y_op, None if z_op is None else z_op - skipped)


def producer(recorder, calls, span, name, method):
    """None when the module of span produces the latents the first of calls takes (in compress, whenever the module
    ran: a compress may code what it computes of y, packed or as symbols, or code y with the coder directly), else
    the operation's index."""
    if "output" in span and (method == "compress" or not calls):
        return None
    if not calls:
        raise UnsupportedModel(f"{name}'s {method} calls its entropy models' {method} too seldom to find its latents "
                               f"(and it has no g_a or h_a module): register an adapter for it (docs/codecs.md)")
    index, tensor = holder(recorder, *calls[0], name)
    return None if span.get("output") is tensor else index


def put(seen, attribute, value, shape, name):
    """An OpSlots action: the operation's output replaced by value (None: kept), recorded in seen; shape: what the
    output must be (None: any)."""
    def action(output):
        if shape is not None and tuple(output.shape) != shape:
            raise UnsupportedModel(f"{name} runs other operations on an image of another size than the one it was "
                                   f"probed on (its latents are not where they were): register an adapter")
        setattr(seen, attribute, output if value is None else value.clone())  # its own: the model may change it
        return getattr(seen, attribute)
    return action


def substituted(codec, y, z, seen, slots):
    """A context in which the model's entry point with these slots sees y and z as its latents (None: its own, as
    its analysis or hyper-analysis makes them, recorded in seen)."""
    from .forward_pass import Constant, HyperAnalysis
    stack, actions, name = contextlib.ExitStack(), {}, type(codec.model).__name__
    if slots.y_op is None and y is not None:
        stack.enter_context(swapped(codec.model, "g_a", Constant(y)))
        seen.y = y
    elif slots.y_op is not None:
        actions[slots.y_op] = put(seen, "y", y, None if y is None else tuple(y.shape), name)
    if slots.z_op is None:
        hyper = HyperAnalysis(codec.h_a, None, z, seen, name)
        stack.enter_context(swapped(codec.h_a_owner, "h_a", hyper))
    else:
        actions[slots.z_op] = put(seen, "z", z, None if z is None else tuple(z.shape), name)
    if actions:
        stack.enter_context(OpSlots(actions))
    return stack
