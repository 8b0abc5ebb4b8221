"""The sgaplus checkpoint file: a codec's architecture, sizes, training record and weights."""
import os
from pathlib import Path

import torch

from .codecs.registry import UnknownArchitecture, build_model

FORMAT = "sgaplus-checkpoint"
VERSION = 1


class CheckpointError(ValueError):
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
