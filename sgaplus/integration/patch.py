"""sgaplus.patch: a model's own `compress` refines the latents of the images it is given, in place and undoably, so
that an evaluation script written for the model reports refined results with one added line.

The patched compress returns what the model's own compress returns for the image and the call's other arguments
(every key, the same layout), its strings replaced by those of the refined latents, written by the model's adapter
(sgaplus.codec_for): the strings the model's own compress writes for those latents, so its unchanged decompress
reads them. A call with more than the image refines with those arguments (call_arguments.py: a variable-rate model's
rate; the generic adapter's arguments by name), or through calls= (a ModelCalls). While sgaplus itself
calls a model's compress (the adapter, the template, a subclass's super().compress()), every patched compress is the
model's own: nothing is refined twice.
"""
import contextlib
import contextvars
import functools
import sys
import types
import weakref
from dataclasses import dataclass

import torch

from ..codecs import registry
from ..codecs.forward import ForwardCodec
from ..codecs.model_calls import ModelCalls
from ..decoded_files import check_decoded
from ..errors import ModelError, UsageError
from ..files.loading import codec_for
from ..refine.refiner import LatentRefiner
from ..refine.settings import RefinementSettings
from .call_arguments import ScriptCalls, SignatureRefusal, bound, by_name, variable_rate
from .weights import known_weights

_OWN = contextvars.ContextVar("sgaplus_own_compress", default=False)  # True: patched compresses are the model's own
RUNNING = ("progress", "backend", "checkpoint_synthesis")  # LatentRefiner's keywords of how it runs
COMMAND_LINE_ONLY = ("device", "batch_size", "target_bpp", "target_bytes")  # a run's, not a compress call's
OPTIONS = sorted(set(RefinementSettings.keywords()) - set(COMMAND_LINE_ONLY) - {"lmbda"}) + [
    "distortion", "early_stopping", *RUNNING]


@contextlib.contextmanager
def own_compress():
    """Within: every patched compress runs the model's own."""
    token = _OWN.set(True)
    try:
        yield
    finally:
        _OWN.reset(token)


class OptionsCheck:
    """A stand-in codec on which the options' values are checked before any model is touched."""
    lmbda, metric = 1.0, None


def refiners(iterations=None, **options):
    """A function codec -> the LatentRefiner the options ask for: any RefinementSettings field by its name
    (preset: the default preset's unless given; eager unless compile=True; iterations 0: none, the model's own
    latents; metric: default what the model was trained for), and LatentRefiner's progress, backend and
    checkpoint_synthesis. UsageError (one line) for an unknown option or a bad value, now."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise UsageError(f"sgaplus.patch: unknown option {unknown[0]!r}; options: iterations, {', '.join(OPTIONS)}")
    if iterations is not None and not (isinstance(iterations, int) and iterations >= 0):
        raise UsageError(f"sgaplus.patch: iterations must be an integer >= 0 (0: the model's own latents), got "
                         f"{iterations!r}")
    if iterations == 0:
        options["method"], iterations = "base", None  # no step: the model's own latents, as "base" keeps them
    running = {name: options.pop(name) for name in RUNNING if name in options}
    try:
        settings = RefinementSettings.of(iterations=iterations, **options).resolved().for_pixels([0])
    except (TypeError, ValueError) as error:
        raise UsageError(f"sgaplus.patch: {error}") from None
    return refiner_maker(settings, **running)


def refiner_maker(settings, who="sgaplus.patch", **running):
    """A function codec -> LatentRefiner of these settings (their objective made the codec's), checked now on a
    stand-in codec; `who` begins its refusals."""
    def refiner_for(codec):
        try:
            return LatentRefiner(codec, settings.for_codec(codec), **running)
        except (TypeError, ValueError) as error:
            raise UsageError(f"{who}: {error}") from None
    refiner_for(OptionsCheck())
    return refiner_for


@dataclass
class Refinement:
    """A codec and its refiner for compress calls of one kind; script: the ScriptCalls through which the generic
    adapter calls the model (None for an adapter of the model's class, or calls= given)."""
    codec: object
    refiner: LatentRefiner
    script: ScriptCalls = None

    def refined(self, x, first, name):
        """(y_hat, z_hat, each image's strings) of x's refined latents; each file checked by the model's decompress
        (first: the batch index of x's first image, for the message)."""
        with torch.inference_mode(False), torch.enable_grad():
            result = self.refiner.refine(x.clone())
        with torch.no_grad():
            images = self.codec.compress(result.y_hat, result.z_hat)
            for i, strings in enumerate(images):  # no strings returned unread
                decoded = self.codec.decompress(strings, self.codec.z_size(x.shape[-2:]))
                check_decoded(f"{name}.compress, image {first + i} of the batch", decoded, result.x_hat[i:i + 1])
        return result.y_hat, result.z_hat, images

    def own_result(self, call, model, x, y_hat, z_hat):
        """What call(model, x), the model's own compress with the script's arguments, returns; where it returns no
        dict (the generic adapter's model writes a file), what it returns called again with the refined latents in
        place (the file then holds them)."""
        out = call(model, x)
        if isinstance(out, dict) or not isinstance(self.codec, ForwardCodec):
            return out
        return self.codec.compress_with(y_hat, z_hat, x, call)


class ModelRefinement:
    """One model's codecs and refiners (one for each kind of compress call: a variable-rate model's rate, the names of
    the arguments the generic adapter passes on), and what building them changed of the model (restore() puts it
    back: its weights and buffers, train/eval modes, requires_grad). The codec of a call with the image alone is built
    now, where the model takes such a call; others at their first call."""

    def __init__(self, model, lmbda, refiner_for, announce=False, calls=None):
        self.model, self.refiner_for, self.announce, self.calls = model, refiner_for, announce, calls
        self.modes = [(module, module.training) for module in model.modules()]
        self.grads = [(parameter, parameter.requires_grad) for parameter in model.parameters()]
        self.state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        self.current = None  # (the kind of call, its Refinement)
        try:
            self.lmbda, self.metric = (lmbda, None) if lmbda is not None else known_lambda(model)
            with own_compress():
                self.refinement(type(model).compress, None, (), {})
        except SignatureRefusal:
            pass  # the model needs more than the image: its codec comes with its first call
        except BaseException:
            self.restore()
            raise

    def restore(self):
        for module, training in self.modes:
            module.training = training
        for parameter, requires_grad in self.grads:
            parameter.requires_grad_(requires_grad)
        with torch.no_grad():
            for name, saved in self.state.items():
                owner, _, attribute = name.rpartition(".")
                current = getattr(self.model.get_submodule(owner), attribute)
                if current.shape != saved.shape:
                    current.data = saved  # a buffer the model's update() resized
                elif not torch.equal(current, saved):
                    current.copy_(saved)  # a weight a codec changed in place (masked context weights)

    def refinement(self, own, x, args, kwargs):
        """The Refinement of a call own(model, x, *args, **kwargs): the one of the last call when it is of the same
        kind, else built (a variable-rate model's codec sets the model's tables for its rate)."""
        key, arguments, build = self.kind_of(own, x, args, kwargs)
        if self.current is None or self.current[0] != key:
            codec, script = build()
            codec.metric = self.metric
            self.current = key, Refinement(codec, self.refiner_for(codec), script)
            self.announced(codec, self.current[1].refiner)
        elif self.current[1].script is not None:
            self.current[1].script.use(arguments)
        return self.current[1]

    def announced(self, codec, refiner):
        if self.announce:
            rate = f" at {codec.model_id.rsplit(':', 1)[1]}" if getattr(codec, "variable_rate", False) else ""
            print(f"sgaplus: {type(self.model).__name__}'s compress refines{rate} (lambda {refiner.lmbda:.4g}, "
                  f"{refiner.method}, {refiner.iterations} iterations)", file=sys.stderr)

    def kind_of(self, own, x, args, kwargs):
        """(the kind of the call, its arguments bound, a function building its (codec, ScriptCalls or None)):
        docs/codecs.md, "Other signatures"."""
        model, name = self.model, type(self.model).__name__
        if self.calls is not None:
            return "calls", None, lambda: (codec_for(model, self.lmbda, calls=self.calls), None)
        arguments = bound(own, model, x, args, kwargs)
        adapter = registry.adapter_for_class(type(model))
        if adapter is not None and adapter.variable_rate:
            rate = variable_rate(arguments, name)
            return tuple(rate.items()), arguments, lambda: (codec_for(model, self.lmbda, **rate), None)
        if adapter is not None:
            if args or kwargs:
                raise ModelError(f"sgaplus.patch: {name}.compress was called with other arguments than the image; "
                                 f"its adapter refines compress(x), as CompressAI calls it")
            return "image", arguments, lambda: (codec_for(model, self.lmbda), None)

        def generic():
            script = ScriptCalls(model, own, arguments)
            return codec_for(model, self.lmbda, calls=script.model_calls()), script
        return tuple(sorted(by_name(arguments, name))), arguments, generic

    def compress(self, own, x, args=(), kwargs=None):
        """own(model, x, *args, **kwargs) (the model's own compress), its strings those of x's refined latents."""
        name, kwargs = type(self.model).__name__, kwargs or {}
        if not (isinstance(x, torch.Tensor) and x.dim() == 4 and x.shape[1] == 3):
            raise UsageError(f"sgaplus.patch: {name}.compress refines a (B, 3, H, W) image batch, got "
                             f"{getattr(x, 'shape', type(x).__name__)}")
        bound(own, self.model, x, args, kwargs)  # a call the model's compress does not take: refused before any work
        with own_compress():
            refinement = self.refinement(own, x, args, kwargs)
        multiple = refinement.codec.multiple
        if x.shape[-2] % multiple or x.shape[-1] % multiple:
            raise UsageError(f"sgaplus.patch: {name}.compress got a {x.shape[-2]}x{x.shape[-1]} image; refined, it "
                             f"codes images padded to a multiple of {multiple} (pad before compress, as CompressAI's "
                             f"eval_model does)")
        with own_compress():
            y_hat, z_hat, images = self.refined(refinement, x, name)
            out = refinement.own_result(lambda model, image: own(model, image, *args, **kwargs), self.model, x, y_hat,
                                        z_hat)
        return replaced(out, images, refinement.codec, name)

    @staticmethod
    def refined(refinement, x, name):
        """(y_hat, z_hat, images' strings) of the batch: refined together, or one image at a time where the
        ScriptCalls says so."""
        if refinement.script is None or not refinement.script.one_at_a_time():
            return refinement.refined(x, 0, name)
        parts = []
        for index in range(x.shape[0]):
            refinement.script.index = index
            parts.append(refinement.refined(x[index:index + 1], index, name))
        y_hats, z_hats, images = zip(*parts)
        return torch.cat(y_hats), torch.cat(z_hats), [strings for image in images for strings in image]


def replaced(out, images, codec, name):
    """The model's own compress's result with its strings those of the refined images; as it is where the generic
    adapter's model returns no dict (it wrote a file, from the refined latents)."""
    if isinstance(codec, ForwardCodec) and not isinstance(out, dict):
        return out
    if not (isinstance(out, dict) and len(out.get("strings", ())) == len(images[0])):
        raise ModelError(f"sgaplus.patch: {name}.compress returns no 'strings' of {len(images[0])} lists, one "
                         f"per coded latent: its adapter's strings cannot take their place")
    return {**out, "strings": [list(strings) for strings in zip(*images)]}


def known_lambda(model):
    """(lmbda, metric) of bundled or zoo weights, (None, None) for a variable-rate model (its codec takes its rate's
    training lambda); UsageError (one line) for any other."""
    adapter = registry.adapter_for_class(type(model))
    if adapter is not None and adapter.variable_rate:
        return None, None
    known = known_weights(model)
    if known is None:
        raise UsageError(f"sgaplus.patch: the training lambda of this {type(model).__name__} is not known (its weights "
                         f"are neither bundled nor CompressAI's zoo weights): pass lmbda=..., or --lmbda")
    return known


def refining(own, refinement_of):
    """A compress(self, x, ...) that refines through refinement_of(self), in place of own(self, x, ...)."""
    @functools.wraps(own)
    def compress(self, x, *args, **kwargs):
        if _OWN.get():
            return own(self, x, *args, **kwargs)
        return refinement_of(self).compress(own, x, args, kwargs)
    compress.sgaplus_patched = True
    return compress


class Patch:
    """What sgaplus.patch returns: undo() restores everything it changed; `with` undoes on exit, also on an
    exception."""

    def __init__(self):
        self._undo = []

    def undo(self):
        while self._undo:
            self._undo.pop()()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.undo()
        return False


def patch_model(model, lmbda, refiner_for, calls=None):
    """Patch one model instance: the codec and refiner of a call with the image alone are built now (a refusal comes
    now), where the model takes such a call."""
    if getattr(vars(model).get("compress"), "sgaplus_patched", False):  # a class's patch is no matter: this wins
        raise UsageError(f"sgaplus.patch: this {type(model).__name__} is patched already (undo that patch first)")
    refinement = ModelRefinement(model, lmbda, refiner_for, calls=calls)
    own = type(model).compress
    model.compress = types.MethodType(refining(own, lambda _: refinement), model)
    handle = Patch()
    handle._undo += [refinement.restore, lambda: delattr(model, "compress")]
    return handle


class ClassPatch(Patch):
    """Patches classes: every instance compresses refined, its codec built at its first compress (and kept)."""

    def __init__(self, lmbda, refiner_for, announce=False, calls=None):
        super().__init__()
        self.refinements = weakref.WeakKeyDictionary()
        self.lmbda, self.refiner_for, self.announce, self.calls = lmbda, refiner_for, announce, calls
        self._undo.append(self._restore_models)

    def refinement_of(self, model):
        if model not in self.refinements:
            self.refinements[model] = ModelRefinement(model, self.lmbda, self.refiner_for, self.announce, self.calls)
        return self.refinements[model]

    def _restore_models(self):
        for refinement in list(self.refinements.values()):
            refinement.restore()
        self.refinements.clear()

    def add(self, cls):
        """Patch cls's compress (the one it defines or inherits)."""
        if getattr(cls.compress, "sgaplus_patched", False) and "compress" not in vars(cls):
            return  # inherited from a class patched here
        had = vars(cls).get("compress")
        cls.compress = refining(cls.compress, self.refinement_of)
        self._undo.append(lambda: setattr(cls, "compress", had) if had is not None else delattr(cls, "compress"))

    def add_subclasses(self, base):
        """Patch base and every subclass of it that defines compress, now and created later (until undone)."""
        for cls in [base, *subclasses(base)]:
            if "compress" in vars(cls):
                self.add(cls)
        had = vars(base).get("__init_subclass__")
        patcher = self

        def init_subclass(cls, **kwargs):
            (had.__get__(None, cls) if had is not None else super(base, cls).__init_subclass__)(**kwargs)
            if "compress" in vars(cls):
                patcher.add(cls)
        base.__init_subclass__ = classmethod(init_subclass)
        self._undo.append(lambda: setattr(base, "__init_subclass__", had) if had is not None
                          else delattr(base, "__init_subclass__"))


def subclasses(cls):
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *subclasses(sub)]
    return found


def patch(model, lmbda=None, calls=None, **options):
    """Make model.compress(x, ...) refine x's latents and return what the model's own compress returns for the same
    arguments, in its own form (its unchanged decompress reads it); patch a CompressionModel class to do so for every
    instance. lmbda: the RD trade-off (default: the training lambda of bundled or zoo weights, or of a variable-rate
    model's rate; required otherwise). calls: a ModelCalls for a model whose forward, compress or decompress the
    compress call's own arguments do not settle (docs/codecs.md, "Other signatures"). options: preset, method,
    iterations, metric, any other RefinementSettings field by its name (sgaplus/refine/settings.py) and
    LatentRefiner's progress, backend and checkpoint_synthesis (default: the default preset). Returns a handle:
    .undo(), or
    `with sgaplus.patch(model, ...):`. UsageError or ModelError (one line) before any work for a mistake or a
    model codec_for refuses."""
    refiner_for = refiners(**options)
    if calls is not None and not isinstance(calls, ModelCalls):
        raise UsageError(f"sgaplus.patch: calls must be a sgaplus.ModelCalls, got {type(calls).__name__}")
    if isinstance(model, type):
        if not issubclass(model, torch.nn.Module) or not callable(getattr(model, "compress", None)):
            raise UsageError(f"sgaplus.patch: {model.__name__} is no model class with a compress method")
        handle = ClassPatch(lmbda, refiner_for, calls=calls)
        handle.add(model)
        return handle
    if not isinstance(model, torch.nn.Module) or not callable(getattr(model, "compress", None)):
        raise UsageError(f"sgaplus.patch takes a CompressionModel or a class of them, got {type(model).__name__}")
    return patch_model(model, lmbda, refiner_for, calls)
