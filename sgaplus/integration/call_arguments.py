"""A patched compress called with more than the image (docs/codecs.md, "Other signatures").

CompressAI's variable-rate models, called as CompressAI's eval_model calls them, `compress(x, stage, s,
inputscale)`: the patch refines at level s, or at the gain inputscale when it is not 0 (the signature's defaults
where the call gives none), at stage 2 (stage 1 codes without the variable-rate quantizer: refused).

Any model the generic adapter drives: the compress call's arguments besides the image go to compress as they were
given, and by name to the model's forward and decompress where these declare a parameter of that name (forward(x,
qmap) gets compress(x, qmap)'s qmap; decompress is called (strings, shape, ...)). A tensor argument whose first
dimension is the batch's follows the image: an image refined alone gets its slice (a call with arguments refines
its images one at a time), and the test image a model is checked on gets it resized (nearest) where its last two
dimensions are the image's height and width. Where the signatures do not settle a call (a required parameter of
forward or decompress that the call does not give, arguments compress takes as *args, a decompress that does not
take (strings, shape)) the patch refuses in one line naming calls=.
"""
import inspect

import torch
import torch.nn.functional as F

from ..codecs.forward_probe import PROBE_SIZE
from ..codecs.model_calls import ADVICE, CALLED_AS, ModelCalls, call_refusal
from ..errors import UsageError

VBR_DEFAULTS = {"stage": 2, "s": 1, "inputscale": 0}  # CompressAI's variable-rate compress's defaults


class SignatureRefusal(UsageError):
    """A call whose arguments the signatures do not settle (the patch builds no codec for it)."""


def bound(own, model, x, args, kwargs):
    """The compress call's arguments bound to own(model, x, ...), the model's compress; SignatureRefusal (one line)
    when it does not take them."""
    try:
        return inspect.signature(own).bind(model, x, *args, **kwargs)
    except TypeError as error:
        raise SignatureRefusal(f"sgaplus.patch: {type(model).__name__}.compress{inspect.signature(own)} does not take "
                               f"this call's arguments ({error})") from None


def variable_rate(arguments, name):
    """{"level": s} or {"gain": inputscale} of a variable-rate model's compress call (bound)."""
    given = {**VBR_DEFAULTS, **arguments.arguments}
    if given["stage"] != 2:
        raise UsageError(f"sgaplus.patch: {name}.compress(stage={given['stage']}) codes without the variable-rate "
                         f"quantizer that sgaplus refines: call it with stage=2 (CompressAI's eval_model: "
                         f"--vbr_tr_stage 2)")
    gain, level = given["inputscale"], given["s"]
    if float(gain) != 0:
        return {"gain": float(gain)}  # a tensor, as eval_model passes it
    return {"level": int(level) if isinstance(level, torch.Tensor) else level}


def by_name(arguments, name):
    """{name: value} of a bound compress call's arguments besides the model and the image."""
    parameters = arguments.signature.parameters
    found = {}
    for key, value in list(arguments.arguments.items())[2:]:
        kind = parameters[key].kind
        if kind is inspect.Parameter.VAR_POSITIONAL and value:
            raise SignatureRefusal(f"sgaplus.patch: {name}.compress takes {len(value)} of this call's arguments as "
                                   f"*{key}, by no name that forward or decompress could take: {ADVICE}")
        if kind is inspect.Parameter.VAR_KEYWORD:
            found.update(value)
        elif kind is not inspect.Parameter.VAR_POSITIONAL:
            found[key] = value
    return found


def passed_on(model, method, names):
    """The names of the call's arguments that model.<method> (forward or decompress) declares, by which it gets them;
    SignatureRefusal when it cannot be called so."""
    parameters = list(inspect.signature(getattr(model, method)).parameters.values())[len(CALLED_AS[method]):]
    chosen = [p.name for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name in names]
    refusal = call_refusal(model, method, chosen)
    if refusal:
        raise SignatureRefusal(f"sgaplus.patch: {refusal}: {ADVICE}")
    return chosen


def fitted(value, batch, image_size, index, size=None):
    """An argument for image `index` of the call's batch refined alone, resized to size (the test image's) where it
    is a tensor of the batch and of the image's height and width."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0 or value.shape[0] != batch:
        return value
    value = value[index:index + 1]
    if size is not None and value.dim() == 4 and value.is_floating_point() and tuple(value.shape[-2:]) == image_size:
        value = F.interpolate(value, size=size, mode="nearest")
    return value


class Arguments:
    """A compress call's arguments (as given, and by name) for one image, or the batch."""

    def __init__(self, arguments, fit):
        self.args = [fit(value) for value in arguments.args[2:]]
        self.kwargs = {key: fit(value) for key, value in arguments.kwargs.items()}
        self.by_name = {key: fit(value) for key, value in by_name(arguments, "").items()}


class ScriptCalls:
    """How the generic adapter calls a model whose compress was called with these arguments (the rule above): the
    call being refined (`use`), the image of its batch being refined (`index`). Every argument a call may be given
    is cut and resized before the model runs: a call runs the same torch operations on any image (the generic
    adapter finds the latents by counting them)."""

    def __init__(self, model, own, arguments):
        name = type(model).__name__
        self.own, self.names = own, sorted(by_name(arguments, name))
        self.forward_names = passed_on(model, "forward", self.names)
        self.decompress_names = passed_on(model, "decompress", self.names)
        self.index, self.size = 0, None
        self.use(arguments)

    def use(self, arguments):
        """The call being refined (bound, with the same names as the one this was built for)."""
        image = arguments.args[1]
        batch, self.image_size = (None, None) if image is None else (image.shape[0], tuple(image.shape[-2:]))
        self.whole = Arguments(arguments, lambda value: value)
        self.images = [Arguments(arguments, lambda value: fitted(value, batch, self.image_size, index))
                       for index in range(batch or 0)]
        self.test = Arguments(arguments, lambda value: fitted(value, batch, self.image_size, 0,
                                                              (PROBE_SIZE, PROBE_SIZE)))
        self.batch = batch

    def chosen(self, size, batch=1):
        """The Arguments of a call on `batch` images of this size: the whole call's, one image's, or the test
        image's."""
        if self.batch is None or (batch, size) == (self.batch, self.image_size):
            return self.whole
        return self.images[self.index] if size == self.image_size else self.test

    def forward(self, model, x):
        shape = tuple(x.shape)  # the one torch operation before the model's, on any image
        given = self.chosen(shape[-2:], shape[0]).by_name
        return model(x, **{key: given[key] for key in self.forward_names})

    def compress(self, model, x):
        shape = tuple(x.shape)
        self.size = shape[-2:]  # what decompress's arguments are chosen for
        given = self.chosen(self.size, shape[0])
        return self.own(model, x, *given.args, **given.kwargs)

    def decompress(self, model, strings, shape):
        given = self.chosen(self.size or self.image_size).by_name
        return model.decompress(strings, shape, **{key: given[key] for key in self.decompress_names})

    def model_calls(self):
        return ModelCalls(forward=self.forward, compress=self.compress, decompress=self.decompress)

    def one_at_a_time(self):
        """Whether the call's images are refined one at a time (it has arguments, and more than one image)."""
        return bool(self.names) and (self.batch or 1) > 1
