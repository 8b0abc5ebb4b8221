"""The sgaplus checkpoint file: a codec's architecture, sizes, training record and weights."""
import os
from pathlib import Path

import torch

from .codecs.registry import UnknownArchitecture, build_model
from .errors import SgaplusError

FORMAT = "sgaplus-checkpoint"
VERSION = 1
MAX_CHANNELS = 1024  # N and M of a checkpoint are refused beyond this before any model is built


class CheckpointError(SgaplusError, ValueError):
    """A checkpoint that cannot be read: missing, corrupt, or not an sgaplus checkpoint."""


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
        raise CheckpointError(f"{path} is not an sgaplus checkpoint (see tools/train_base.py for the format)")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, this sgaplus reads {VERSION}")
    _check_fields(path, payload)
    try:
        model = build_model(payload["architecture"], payload["N"], payload["M"])
    except UnknownArchitecture as error:
        raise CheckpointError(f"{path}: {error}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: weights do not fit {payload['architecture']} "
                              f"N={payload['N']} M={payload['M']}: {str(error).splitlines()[0]}") from None
    meta = {k: payload[k] for k in ("architecture", "N", "M", "info")}
    return model.eval(), meta


def _check_fields(path, payload):
    """The payload's fields have the types and ranges save_checkpoint writes (nothing is built from them before)."""
    for key in ("N", "M"):
        value = payload.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CHANNELS:
            raise CheckpointError(f"{path}: {key} must be an integer in [1, {MAX_CHANNELS}], got {value!r}")
    if not isinstance(payload.get("architecture"), str):
        raise CheckpointError(f"{path}: the architecture must be a name, got {payload.get('architecture')!r}")
    if not isinstance(payload.get("info"), dict) or not isinstance(payload.get("state_dict"), dict):
        raise CheckpointError(f"{path}: info and state_dict must be dictionaries")
    lmbda = payload["info"].get("lmbda")
    if lmbda is not None and (isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not 0 < lmbda < 1e9):
        raise CheckpointError(f"{path}: the training lambda must be a number > 0, got {lmbda!r}")
