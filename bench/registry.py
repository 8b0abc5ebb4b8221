"""What the benchmarks compare, in one place: the contenders (three ways to compute SGA+ rounding), the
configurations, sizes and kernel launch configurations, and how much each contender keeps for backward."""
import os

import torch

import sgaplus
from sgaplus.ops.rounding import METHODS, RoundingConfig
from sgaplus.ops.rounding.reference import sga_round_reference

CONTENDERS = ("eager", "compile", "fused")
HEADLINE_CONFIGS = ("ssl-2", "linear-3")  # sizes, dtypes, memory and roofline are measured for these
ALL_CONFIGS = tuple(f"{m}-{c}" for c in (2, 3) for m in METHODS[c])  # every method, at one size
LAUNCHES = [(512, 4), (1024, 4), (1024, 8), (2048, 4), (2048, 8), (4096, 8), (8192, 16)]  # (BLOCK, num_warps)
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
KODAK = 192 * 48 * 64  # one Kodak-size latent, 589,824 elements
# run.py --sizes passes its sizes to the benchmark processes in this variable (a dry run uses tiny ones)
SIZES = [int(size) for size in os.environ["SGAPLUS_BENCH_SIZES"].split(",")] if "SGAPLUS_BENCH_SIZES" in os.environ \
    else [KODAK, 4 << 20, 16 << 20, 64 << 20] if DEVICE == "cuda" else [KODAK, 4 << 20]
# the refinement-step benchmark's image, height x width (run.py --step-image)
STEP_IMAGE = tuple(int(side) for side in os.environ.get("SGAPLUS_BENCH_STEP_IMAGE", "512x768").split("x"))
TAU = 0.5
_compiled = {}
# every (size, dtype, grad) case is its own static-shape compile; past the limit dynamo would run eager
torch._dynamo.config.recompile_limit = 64


def rounding_fn(contender, cfg):
    """y -> y_tilde for a contender: the reference (eager), torch.compile of it, or the fused op."""
    if contender == "eager":
        return lambda y: sga_round_reference(y, TAU, cfg)
    if contender == "compile":
        if cfg not in _compiled:
            # static shapes: one compile per size (the fastest code; compile time is not timed)
            _compiled[cfg] = torch.compile(lambda y: sga_round_reference(y, TAU, cfg), dynamic=False)
        return _compiled[cfg]
    return lambda y: sgaplus.sga_round(y, TAU, cfg.method, cfg.classes, a=cfg.a, r=cfg.r, n=cfg.n)


def config(name):
    """'ssl-2' -> RoundingConfig('ssl', 2)."""
    method, classes = name.rsplit("-", 1)
    return RoundingConfig(method, int(classes))


def synchronize(device):
    if device == "cuda":
        torch.cuda.synchronize()


def kept_bytes(fn, y):
    """Bytes the autograd graph keeps between forward and backward (beyond y itself and the output).

    On CUDA: allocator growth across the forward, minus the output. On CPU: the storages that the
    saved-tensor hooks see, minus y's own (CPU has no allocator statistics).
    """
    if y.is_cuda:
        torch.cuda.synchronize()
        before = torch.cuda.memory_allocated()
        out = fn(y)
        torch.cuda.synchronize()
        return torch.cuda.memory_allocated() - before - out.numel() * out.element_size()
    storages = {}

    def pack(t):
        storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        fn(y)
    storages.pop(y.untyped_storage().data_ptr(), None)
    return sum(storages.values())
