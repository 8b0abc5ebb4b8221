"""Checkpoint files: the sgaplus checkpoint (a codec's architecture, sizes, options, training record and weights),
and a plain CompressAI state dict of a named architecture (the way CompressAI-compatible weights are published)."""
import os
from pathlib import Path

import torch

from ..codecs.registry import UnknownArchitecture, build_model, model_from_state_dict
from ..errors import SgaplusError

FORMAT = "sgaplus-checkpoint"
VERSION = 1
DATA_PARALLEL_PREFIX = "module."  # of every weight's name in a state dict saved from a DataParallel model
MAX_CHANNELS = 1024  # N and M of a checkpoint are refused beyond this before any model is built


class CheckpointError(SgaplusError, ValueError):
    """A checkpoint that cannot be read: missing, corrupt, or not an sgaplus checkpoint."""


def save_checkpoint(model, path, architecture, N, M, info, options=None, half=False):
    """Write the model (after model.update(), so its coder tables travel with it) atomically. options: the model
    class's other constructor arguments (e.g. ELIC's channel groups), if any. half: store the floating-point
    parameters in float16 (half the size); they are rounded to float16 first, so the coder tables are those of the
    weights a reader loads. Buffers stay as they are: a float16 likelihood bound of 1e-9 would be 0, and a relaxed
    rate infinite wherever a likelihood underflows."""
    parameters = {name for name, _ in model.named_parameters()}
    if half:
        with torch.no_grad():
            for parameter in model.parameters():
                parameter.copy_(parameter.half())
    model.update(force=True)
    state = {key: value.half() if half and key in parameters and value.is_floating_point() else value
             for key, value in model.state_dict().items()}
    payload = {"format": FORMAT, "version": VERSION, "architecture": architecture, "N": N, "M": M,
               "options": dict(options or {}), "info": info, "state_dict": state}
    tmp = f"{path}.tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _read(path):
    """The payload of a torch file; CheckpointError if it is missing or unreadable."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a corrupt file
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(error).__name__})") from None


def load_state_dict_file(path, architecture):
    """(model in eval mode, ready to code, metadata dict) from a plain CompressAI state dict of `architecture` (or a
    training checkpoint holding one under "state_dict"); an sgaplus checkpoint of that architecture is read too."""
    payload = _read(path)
    if isinstance(payload, dict) and payload.get("format") == FORMAT:
        model, meta = load_checkpoint(path)
        if meta["architecture"] != architecture:
            raise CheckpointError(f"{path} is an sgaplus checkpoint of {meta['architecture']}, not {architecture}")
        return model, meta
    state = _state_of(path, payload)
    try:
        model = model_from_state_dict(architecture, state)
    except UnknownArchitecture as error:
        raise CheckpointError(str(error)) from None
    except (KeyError, RuntimeError, ValueError, TypeError, AssertionError, IndexError) as error:
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path}: these weights do not fit {architecture}: {reason}") from None
    model.update(force=True)
    return model.eval(), {"architecture": architecture, "N": None, "M": None, "options": {},
                          "info": {"lmbda": None, "source": "state dict", "metric": None}}


def _state_of(path, payload):
    """The names-to-tensors dict of a torch file's payload, plain or under "state_dict" (a training checkpoint),
    without the "module." prefix of weights saved from DataParallel."""
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state or not all(
            isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state.items()):
        raise CheckpointError(f"{path} is not a state dict (names to tensors) of CompressAI weights")
    if all(key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        state = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state.items()}
    return state


def read_state_dict(path):
    """The weights of a torch file holding a state dict, plain or under "state_dict" (see _state_of)."""
    return _state_of(path, _read(path))


def load_checkpoint(path):
    """(model in eval mode, ready to code, metadata dict) from an sgaplus checkpoint file."""
    payload = _read(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an sgaplus checkpoint (see tools/train_base.py for the format); for "
                              f"a CompressAI state dict, name its architecture with --model")
    if payload.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {payload.get('version')}, this sgaplus reads {VERSION}")
    _check_fields(path, payload)
    try:
        model = build_model(payload["architecture"], payload["N"], payload["M"], payload.get("options"))
    except (UnknownArchitecture, ValueError, TypeError, AssertionError) as error:
        raise CheckpointError(f"{path}: {error or type(error).__name__}") from None
    try:
        model.load_state_dict(payload["state_dict"])
    except (RuntimeError, KeyError, ValueError) as error:
        raise CheckpointError(f"{path}: weights do not fit {payload['architecture']} "
                              f"N={payload['N']} M={payload['M']}: {str(error).splitlines()[0]}") from None
    meta = {k: payload[k] for k in ("architecture", "N", "M", "info")}
    meta["options"] = payload.get("options") or {}
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
    options = payload.get("options", {})
    if not isinstance(options, dict) or not all(isinstance(key, str) for key in options):
        raise CheckpointError(f"{path}: options must be a dictionary of keyword arguments, got {options!r}")
    lmbda = payload["info"].get("lmbda")
    if lmbda is not None and (isinstance(lmbda, bool) or not isinstance(lmbda, (int, float)) or not 0 < lmbda < 1e9):
        raise CheckpointError(f"{path}: the training lambda must be a number > 0, got {lmbda!r}")
