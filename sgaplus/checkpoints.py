"""Codec checkpoints: the sgaplus file format, the bundled models, and CompressAI's zoo."""
import json
import os
from pathlib import Path

import torch

FORMAT = "sgaplus-checkpoint"
VERSION = 1
ASSETS = Path(__file__).parent / "assets"
ARCHITECTURES = ("mbt2018-mean", "bmshj2018-hyperprior")


class CheckpointError(ValueError):
    """A checkpoint that cannot be read: missing, corrupt, or not an sgaplus checkpoint."""


def build_model(architecture, N, M):
    from compressai.models import MeanScaleHyperprior, ScaleHyperprior
    classes = {"mbt2018-mean": MeanScaleHyperprior, "bmshj2018-hyperprior": ScaleHyperprior}
    if architecture not in classes:
        raise CheckpointError(f"unknown architecture {architecture!r}; known: {', '.join(classes)}")
    return classes[architecture](N=N, M=M)


def save_checkpoint(model, path, architecture, N, M, info):
    """Write the model (after model.update(), so its coder tables travel with it) atomically."""
    model.update(force=True)
    payload = {"format": FORMAT, "version": VERSION, "architecture": architecture, "N": N, "M": M,
               "info": info, "state_dict": model.state_dict()}
    tmp = f"{path}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def load_checkpoint(path):
    """(model in eval mode, ready to code, metadata dict) from an sgaplus checkpoint file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an sgaplus checkpoint (see bench/train_base.py for the format)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, this sgaplus reads {VERSION}")
    model = build_model(payload["architecture"], payload["N"], payload["M"])
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: weights do not fit {payload['architecture']} "
                              f"N={payload['N']} M={payload['M']}: {str(error).splitlines()[0]}") from None
    meta = {k: payload[k] for k in ("architecture", "N", "M", "info")}
    return model.eval(), meta


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
    from compressai import zoo
    names = {"mbt2018-mean": zoo.mbt2018_mean, "bmshj2018-hyperprior": zoo.bmshj2018_hyperprior}
    if architecture not in names:
        raise CheckpointError(f"no zoo model {architecture!r}; available: {', '.join(names)}")
    try:
        model = names[architecture](quality=quality, pretrained=True)
    except Exception as error:
        raise CheckpointError(f"could not fetch CompressAI's {architecture} q{quality} weights "
                              f"({type(error).__name__}: {error}); use the bundled model or --checkpoint") from None
    model.update(force=True)
    lmbda = {1: 0.0018, 2: 0.0035, 3: 0.0067, 4: 0.0130, 5: 0.0250, 6: 0.0483, 7: 0.0932, 8: 0.1800}
    return model.eval(), {"architecture": architecture, "info": {"lmbda": lmbda.get(quality), "source": "zoo"}}


def file_digest(path):
    import hashlib
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]


def load_codec(architecture=None, quality=None, checkpoint=None):
    """A refinable codec: a checkpoint file, CompressAI's zoo (architecture + quality), or the bundled model."""
    from .codecs import CompressAIHyperprior
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
    return CompressAIHyperprior(model, model_id, meta["info"].get("lmbda"))


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
