"""Where a refinable codec comes from: the bundled models, an sgaplus checkpoint file, or CompressAI's zoo;
and the codec a bitstream's model id names."""
import hashlib
import json
from pathlib import Path

from ..checkpoints import CheckpointError, load_checkpoint
from . import registry

ASSETS = Path(__file__).resolve().parent.parent / "assets"


def bundled_models():
    """{quality: metadata} of the checkpoints shipped in sgaplus/assets (see assets/models.json)."""
    index = ASSETS / "models.json"
    if not index.is_file():
        return {}
    return {int(q): entry for q, entry in json.loads(index.read_text()).items()}


def default_bundled_quality():
    """The quality used when none is asked for: the middle one of the bundled models."""
    models = bundled_models()
    if not models:
        raise CheckpointError("no bundled model is installed (sgaplus/assets/models.json is missing)")
    return sorted(models)[len(models) // 2]


def load_bundled(quality=None):
    """The bundled model of `quality` (default: the middle one) and its metadata."""
    if quality is None:
        quality = default_bundled_quality()
    models = bundled_models()
    if quality not in models:
        raise CheckpointError(f"no bundled model of quality {quality}; bundled: {sorted(models)}")
    return load_checkpoint(ASSETS / models[quality]["file"])


def load_zoo(architecture, quality):
    """CompressAI's pretrained model (downloads its weights; needs the internet)."""
    try:
        qualities = registry.zoo_qualities(architecture)
    except registry.UnknownArchitecture as error:
        raise CheckpointError(str(error)) from None
    if quality not in qualities:
        raise CheckpointError(f"CompressAI's zoo has {architecture} at qualities {min(qualities)} to {max(qualities)}; "
                              f"got {quality}")
    try:
        model = registry.zoo_model(architecture, quality)
    except Exception as error:
        raise CheckpointError(f"could not fetch CompressAI's {architecture} q{quality} weights "
                              f"({type(error).__name__}: {error}); use the bundled model or --checkpoint") from None
    model.update(force=True)
    return model.eval(), {"architecture": architecture,
                          "info": {"lmbda": registry.ZOO_LAMBDAS.get(quality), "source": "zoo"}}


def file_digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_codec(architecture=None, quality=None, checkpoint=None):
    """A refinable codec: a checkpoint file, CompressAI's zoo (architecture + quality), or the bundled model."""
    if checkpoint is not None:
        model, meta = load_checkpoint(checkpoint)
        model_id = f"file:{file_digest(checkpoint)}"
    elif architecture is not None:
        quality = 3 if quality is None else quality
        model, meta = load_zoo(architecture, quality)
        model_id = f"zoo:{architecture}:q{quality}"
    else:
        quality = default_bundled_quality() if quality is None else quality
        model, meta = load_bundled(quality)
        model_id = f"bundled:q{quality}"
    return registry.adapter(meta["architecture"])(model, model_id, meta["info"].get("lmbda"))


def codec_for_id(model_id, checkpoint=None):
    """The codec a bitstream names; a 'file:' model needs its checkpoint, checked by digest."""
    kind, _, rest = model_id.partition(":")
    if kind == "bundled":
        return load_codec(quality=int(rest.lstrip("q")))
    if kind == "zoo":
        architecture, _, quality = rest.partition(":")
        return load_codec(architecture, int(quality.lstrip("q")))
    if kind == "file":
        if checkpoint is None:
            raise CheckpointError(f"this bitstream was made with a checkpoint file (digest {rest}): pass it with "
                                  f"--checkpoint")
        if file_digest(checkpoint) != rest:
            raise CheckpointError(f"{checkpoint} is not the checkpoint this bitstream was made with "
                                  f"(digest {file_digest(checkpoint)}, expected {rest})")
        return load_codec(checkpoint=checkpoint)
    raise CheckpointError(f"unknown model id {model_id!r} in the bitstream")
