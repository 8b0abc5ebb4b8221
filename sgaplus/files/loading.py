"""Where a refinable codec comes from: the bundled models, an sgaplus checkpoint file, or CompressAI's zoo;
and the codec a bitstream's model id names."""
import hashlib
import json
from pathlib import Path

import torch

from ..codecs import registry
from ..codecs.forward import ForwardCodec
from ..codecs.vbr import VariableRate, split_rate
from ..errors import UsageError
from . import model_class
from .checkpoints import CheckpointError, load_checkpoint, load_state_dict_file

ASSETS = Path(__file__).resolve().parent.parent / "assets"


DEFAULT_BUNDLED_ARCHITECTURE = "mbt2018-mean"


def bundled_key(architecture, quality):
    """The key of a bundled model in assets/models.json."""
    return f"{architecture}:q{quality}"


def _bundled_entries():
    """The metadata of every checkpoint shipped in sgaplus/assets (assets/models.json; none if it is missing)."""
    index = ASSETS / "models.json"
    return list(json.loads(index.read_text()).values()) if index.is_file() else []


def bundled_models(architecture=DEFAULT_BUNDLED_ARCHITECTURE):
    """{quality: metadata} of the checkpoints of `architecture` shipped in sgaplus/assets."""
    return {entry["quality"]: entry for entry in _bundled_entries() if entry["architecture"] == architecture}


def bundled_architectures():
    """The architectures of the bundled models, the default first."""
    found = {entry["architecture"] for entry in _bundled_entries()}
    return tuple(sorted(found, key=lambda name: (name != DEFAULT_BUNDLED_ARCHITECTURE, name)))


def default_bundled_quality(architecture=DEFAULT_BUNDLED_ARCHITECTURE):
    """The quality used when none is asked for: the middle one of the bundled models of `architecture`."""
    models = bundled_models(architecture)
    if not models:
        raise CheckpointError(f"no bundled {architecture} model is installed")
    return sorted(models)[len(models) // 2]


def bundled_path(architecture=DEFAULT_BUNDLED_ARCHITECTURE, quality=None):
    """The checkpoint file of the bundled model of `architecture` and `quality` (default: the middle one)."""
    if quality is None:
        quality = default_bundled_quality(architecture)
    models = bundled_models(architecture)
    if quality not in models:
        raise CheckpointError(f"no bundled {architecture} model of quality {quality}; bundled: {sorted(models)}")
    return ASSETS / models[quality]["file"]


def load_bundled(architecture=DEFAULT_BUNDLED_ARCHITECTURE, quality=None):
    """The bundled model of `architecture` and `quality` (default: the middle one) and its metadata."""
    return load_checkpoint(bundled_path(architecture, quality))


def load_zoo(architecture, quality=None, metric="mse"):
    """CompressAI's pretrained model (downloads its weights; needs the internet) and its metadata. A fixed-rate
    model at `quality` (default 3), trained for `metric` ("mse" or "ms-ssim"); a variable-rate model has one set of
    weights (its rate is a level or a gain)."""
    try:
        qualities = registry.zoo_qualities(architecture, metric)
        has_weights = registry.has_zoo_weights(architecture)
    except registry.UnknownArchitecture as error:
        raise CheckpointError(str(error)) from None
    if not has_weights:
        raise CheckpointError(f"CompressAI's zoo has no weights of {architecture}: pass its weights as a CompressAI "
                              f"state dict with --checkpoint FILE --model {architecture}")
    if metric != "mse" and not qualities:
        having = [name for name in registry.architectures() if registry.zoo_qualities(name, metric)]
        raise CheckpointError(f"CompressAI's zoo has no {metric} weights of {architecture}; it has them of "
                              f"{', '.join(having)}")
    if not qualities and quality is not None:
        raise CheckpointError(f"CompressAI's zoo has one set of {architecture} weights (a variable-rate model): "
                              f"choose its rate with --level or --gain, not --quality")
    if qualities:
        quality = 3 if quality is None else quality
        if quality not in qualities:
            raise CheckpointError(f"CompressAI's zoo has {architecture} ({metric}) at qualities {min(qualities)} to "
                                  f"{max(qualities)}; got {quality}")
    what = f"{architecture}" + ("" if quality is None else f" q{quality}") + ("" if metric == "mse" else f" {metric}")
    try:
        model = registry.zoo_model(architecture, 0 if quality is None else quality, metric)
    except Exception as error:
        raise CheckpointError(f"could not fetch CompressAI's {what} weights ({type(error).__name__}: {error}); use "
                              f"the bundled model or --checkpoint") from None
    model.update(force=True)
    model_id = f"zoo:{architecture}" + ("" if quality is None else f":q{quality}") + \
        ("" if metric == "mse" else f":{metric}")
    return model.eval(), {"architecture": architecture, "model_id": model_id,
                          "info": {"lmbda": registry.ZOO_LAMBDAS[metric].get(quality), "source": "zoo",
                                   "metric": metric}}


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def state_digest(model):
    """A digest of a model's weights and buffers (names and values)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


def codec_for(model, lmbda=None, model_id=None, calls=None, level=None, gain=None):
    """A refinable codec of any CompressionModel instance: CompressAI's own classes through their registered
    adapters, any other through the generic adapter that drives the model's own forward, compress and decompress
    (ForwardCodec; calls, a ModelCalls, says how to call them when they take more than CompressAI's arguments).
    A variable-rate model codes at level or gain (default: its middle level). model_id (default: the class and a
    digest of its weights) goes into the bitstreams."""
    cls = type(model)
    model_id = model_id or f"class:{cls.__module__}.{cls.__qualname__}:{state_digest(model)}"
    adapter = registry.adapter_for_class(cls)
    rate = {key: value for key, value in (("level", level), ("gain", gain)) if value is not None}
    if rate and not getattr(adapter, "variable_rate", False):
        raise UsageError(f"codec_for: level and gain choose the rate of CompressAI's variable-rate models, not of a "
                         f"{cls.__name__}: leave them out")
    if adapter is None:
        return ForwardCodec(model, model_id, lmbda, calls)
    if calls is not None:
        raise UsageError(f"codec_for: calls= is for models the generic adapter drives; a {cls.__name__} goes to "
                         f"its class's adapter, which calls it as CompressAI does: leave calls out")
    if rate:
        try:
            VariableRate(model, **rate)  # a level or gain the model has not: one line
        except ValueError as error:
            raise UsageError(f"codec_for: {error}") from None
    model.update()
    return adapter(model, model_id, lmbda, **rate)


def load_model_class(spec, checkpoint, model_args=None, lmbda=None, calls=None):
    """The codec (codec_for) of a model class of the user's own, FILE.py:CLASS or package.module:CLASS, built with
    model_args (JSON text or a dict of its constructor's keywords) and the weights in checkpoint; calls: how to call
    it (a ModelCalls, or FILE.py:NAME or package.module:NAME naming one; default: as CompressAI's models)."""
    return codec_for(model_class.build(spec, checkpoint, model_args), lmbda, calls=calls_named(calls))


def calls_named(calls):
    """calls itself (a ModelCalls, or None), or the ModelCalls that FILE.py:NAME or package.module:NAME names."""
    return model_class.import_calls(calls) if isinstance(calls, str) else calls


def load_codec(architecture=None, quality=None, checkpoint=None, bundled=DEFAULT_BUNDLED_ARCHITECTURE, level=None,
               gain=None, metric="mse"):
    """A refinable codec: a checkpoint file (an sgaplus checkpoint, or with `architecture` a CompressAI state dict),
    CompressAI's zoo (architecture + quality; metric: the weights trained for "mse" or "ms-ssim"), or a bundled
    model (`bundled` names its architecture; quality default: the middle one). A variable-rate model codes at
    `level` or `gain` (default: its middle level). The codec's `metric` is what its model was trained for (None:
    not known)."""
    model, meta, model_id = _model_and_id(architecture, quality, checkpoint, bundled, metric)
    adapter = registry.adapter(meta["architecture"])
    if not adapter.variable_rate and (level is not None or gain is not None):
        raise UsageError(f"--level and --gain choose the rate of a variable-rate model; {meta['architecture']} "
                         f"codes at one rate")
    rate = {"level": level, "gain": gain} if adapter.variable_rate else {}
    try:
        codec = adapter(model, model_id, meta["info"].get("lmbda"), **rate)
    except ValueError as error:
        raise UsageError(f"{meta['architecture']}: {error}") from None
    codec.metric = meta["info"].get("metric", "mse")  # an sgaplus checkpoint's model is trained for MSE
    return codec


def _model_and_id(architecture, quality, checkpoint, bundled, metric):
    """(model, metadata, model id) of load_codec's source of weights."""
    if checkpoint is not None and architecture is not None:
        model, meta = load_state_dict_file(checkpoint, architecture)
        return model, meta, f"file:{architecture}:{file_digest(checkpoint)}"
    if checkpoint is not None:
        model, meta = load_checkpoint(checkpoint)
        return model, meta, f"file:{file_digest(checkpoint)}"
    if architecture is not None:
        model, meta = load_zoo(architecture, quality, metric)
        return model, meta, meta["model_id"]
    quality = default_bundled_quality(bundled) if quality is None else quality
    path = bundled_path(bundled, quality)
    model, meta = load_checkpoint(path)
    # the weights' digest: a bitstream names the exact bundled model it was made with
    return model, meta, f"bundled:{bundled}:q{quality}:{file_digest(path)[:8]}"


def _quality(model_id, text):
    """The quality in a model id's 'qN' field; CheckpointError if it is none."""
    if not (text.startswith("q") and text[1:].isdigit()):
        raise CheckpointError(f"malformed model id {model_id!r} in the bitstream")
    return int(text[1:])


def codec_for_id(model_id, checkpoint=None, model_class_spec=None, model_args=None, model_calls=None):
    """The codec a bitstream names (with its rate, for a variable-rate model); a 'file:' model needs its checkpoint,
    a 'class:' model its class, keywords, checkpoint (and its calls where it needs them), and each must be the very
    weights it was made with (checked by digest)."""
    base, level, gain = split_rate(model_id)
    kind, _, rest = base.partition(":")
    if kind == "class":
        return _class_codec(model_id, rest, checkpoint, model_class_spec, model_args, model_calls)
    if kind == "bundled":
        fields = rest.split(":")
        if len(fields) != 3:
            raise CheckpointError(f"this bitstream names {model_id!r}, a bundled model of an earlier sgaplus (before "
                                  f"0.3) whose weights are no longer shipped: decode it with that version")
        architecture, quality, digest = fields
        codec = load_codec(quality=_quality(model_id, quality), bundled=architecture, level=level, gain=gain)
        if codec.model_id != model_id:
            raise CheckpointError(f"this bitstream was made with other weights of the bundled {architecture} "
                                  f"{quality} (digest {digest}; installed: {codec.model_id.rsplit(':', 1)[1]}): "
                                  f"decode it with the sgaplus version that made it")
        return codec
    if kind == "zoo":
        fields = rest.split(":")  # architecture[:qN[:metric]]; MSE weights name no metric
        architecture, quality, metric = fields[0], (fields[1:2] or [None])[0], (fields[2:3] or ["mse"])[0]
        codec = load_codec(architecture, _quality(model_id, quality) if quality else None, level=level, gain=gain,
                           metric=metric)
    elif kind == "file":
        architecture, _, digest = rest.rpartition(":")
        if checkpoint is None:
            raise CheckpointError(f"this bitstream was made with a checkpoint file (digest {digest}): pass it with "
                                  f"--checkpoint")
        if file_digest(checkpoint) != digest:
            raise CheckpointError(f"{checkpoint} is not the checkpoint this bitstream was made with "
                                  f"(digest {file_digest(checkpoint)}, expected {digest})")
        codec = load_codec(architecture or None, checkpoint=checkpoint, level=level, gain=gain)
    else:
        raise CheckpointError(f"unknown model id {model_id!r} in the bitstream")
    if codec.model_id != model_id:
        raise CheckpointError(f"malformed model id {model_id!r} in the bitstream")
    return codec


def _class_codec(model_id, rest, checkpoint, spec, model_args, calls):
    """The codec of a bitstream made with a model class of the user's own ('class:<module>.<class>:<digest>'): the
    same class (by name) with the same weights (by digest)."""
    made, _, digest = rest.rpartition(":")
    if spec is None or checkpoint is None:
        raise CheckpointError(f"this bitstream was made with the model class {made} (weights digest {digest}): pass "
                              f"--model-class, --model-args and --checkpoint as when it was written")
    codec = load_model_class(spec, checkpoint, model_args, calls=calls)
    given, _, given_digest = codec.model_id.removeprefix("class:").rpartition(":")
    if given.rpartition(".")[2] != made.rpartition(".")[2]:
        raise CheckpointError(f"this bitstream was made with the model class {made}, not {given}")
    if given_digest != digest:
        raise CheckpointError(f"this bitstream was made with other weights of {made} (digest {digest}); "
                              f"{checkpoint} with these --model-args gives {given_digest}")
    return codec
