"""Where a refinable codec comes from: the bundled models, an sgaplus checkpoint file, or CompressAI's zoo;
and the codec a bitstream's model id names."""
import hashlib
import json
from pathlib import Path

from ..checkpoints import CheckpointError, load_checkpoint
from . import registry

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


def load_codec(architecture=None, quality=None, checkpoint=None, bundled=DEFAULT_BUNDLED_ARCHITECTURE):
    """A refinable codec: a checkpoint file, CompressAI's zoo (architecture + quality), or a bundled model
    (`bundled` names its architecture; quality default: the middle one)."""
    if checkpoint is not None:
        model, meta = load_checkpoint(checkpoint)
        model_id = f"file:{file_digest(checkpoint)}"
    elif architecture is not None:
        quality = 3 if quality is None else quality
        model, meta = load_zoo(architecture, quality)
        model_id = f"zoo:{architecture}:q{quality}"
    else:
        quality = default_bundled_quality(bundled) if quality is None else quality
        path = bundled_path(bundled, quality)
        model, meta = load_checkpoint(path)
        # the weights' digest: a bitstream names the exact bundled model it was made with
        model_id = f"bundled:{bundled}:q{quality}:{file_digest(path)[:8]}"
    return registry.adapter(meta["architecture"])(model, model_id, meta["info"].get("lmbda"))


def _quality(model_id, text):
    """The quality in a model id's 'qN' field; CheckpointError if it is none."""
    if not (text.startswith("q") and text[1:].isdigit()):
        raise CheckpointError(f"malformed model id {model_id!r} in the bitstream")
    return int(text[1:])


def codec_for_id(model_id, checkpoint=None):
    """The codec a bitstream names; a 'file:' model needs its checkpoint, and both a file and a bundled model must
    be the very weights it was made with (checked by digest)."""
    kind, _, rest = model_id.partition(":")
    if kind == "bundled":
        fields = rest.split(":")
        if len(fields) != 3:
            raise CheckpointError(f"this bitstream names {model_id!r}, a bundled model of an earlier sgaplus (before "
                                  f"0.3) whose weights are no longer shipped: decode it with that version")
        architecture, quality, digest = fields
        codec = load_codec(quality=_quality(model_id, quality), bundled=architecture)
        if codec.model_id != model_id:
            raise CheckpointError(f"this bitstream was made with other weights of the bundled {architecture} "
                                  f"{quality} (digest {digest}; installed: {codec.model_id.rsplit(':', 1)[1]}): "
                                  f"decode it with the sgaplus version that made it")
        return codec
    if kind == "zoo":
        architecture, _, quality = rest.partition(":")
        return load_codec(architecture, _quality(model_id, quality))
    if kind == "file":
        if checkpoint is None:
            raise CheckpointError(f"this bitstream was made with a checkpoint file (digest {rest}): pass it with "
                                  f"--checkpoint")
        if file_digest(checkpoint) != rest:
            raise CheckpointError(f"{checkpoint} is not the checkpoint this bitstream was made with "
                                  f"(digest {file_digest(checkpoint)}, expected {rest})")
        return load_codec(checkpoint=checkpoint)
    raise CheckpointError(f"unknown model id {model_id!r} in the bitstream")
