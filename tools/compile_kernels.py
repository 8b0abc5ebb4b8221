"""Compile every launch configuration of the op's Triton kernels for real GPU targets, without a GPU.

    python tools/compile_kernels.py                  # sm_80 and sm_90 (and sm_100 where Triton has it)
    python tools/compile_kernels.py --arch 90 -k cosine
    python tools/compile_kernels.py --arch 100 --sample   # one configuration per method, direction and dtype

The Triton interpreter, which the CPU test suite runs the kernels through, checks the math but not what the
compiler checks. This tool goes through the same launch code users hit (the launchers in kernels/rounding.py,
installed as sgaplus.kernels.rounding), with a stand-in for Triton's active driver whose target is a real GPU
and whose launches are warmups: Triton generates PTX and its bundled ptxas assembles it into a cubin for that
target. It exits 1 and names the configurations that fail. Run it without TRITON_INTERPRET.
bench/kernels_static.py reads the cubins it makes.

A launch configuration is one specialization the op can ask for: method and class count, forward or
backward, hard or soft (forward), means absent or present (in y's dtype or float32, which is all the op
passes), a gradient for means or not (backward), y in float32, float16 or bfloat16, and y's pointer
16-byte aligned or not (Triton specializes on alignment).
"""
import argparse
import itertools
import os
import sys
import time
from dataclasses import dataclass
from typing import Optional

import torch

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
DEFAULT_ARCHS = (80, 90, 100)
N_ELEMENTS = 4096


@dataclass(frozen=True)
class LaunchConfig:
    method: str
    classes: int
    direction: str  # "forward" or "backward"
    dtype: str
    means: Optional[str] = None  # the means dtype, None without means
    hard: bool = False  # forward only
    means_grad: bool = False  # backward only
    aligned: bool = True

    @property
    def name(self):
        parts = [f"{self.method}-{self.classes}", self.direction, self.dtype,
                 "hard" if self.hard else "", f"means-{self.means}" if self.means else "",
                 "means-grad" if self.means_grad else "", "" if self.aligned else "unaligned"]
        return " ".join(p for p in parts if p)


def sample(configs):
    """The configurations without means and with y aligned: one kernel per method, class count, direction, hardness
    and dtype. A configuration-specific failure comes from the front end, which every target shares (the sweeps
    of sm_80 and sm_90 catch it); a target's own failure (its lowering or its assembler) shows in these."""
    return [c for c in configs if c.means is None and c.aligned]


def launch_configs():
    """Every launch configuration the op can make (see the module docstring)."""
    from sgaplus.ops.rounding import METHODS
    configs = []
    for classes in (2, 3):
        for method in METHODS[classes]:
            for dtype in DTYPES:
                means_options = [None] + sorted({dtype, "float32"})
                for means, hard in itertools.product(means_options, (False, True)):
                    configs.append(LaunchConfig(method, classes, "forward", dtype, means, hard=hard))
                configs.append(LaunchConfig(method, classes, "backward", dtype))
                for means, grad in itertools.product(means_options[1:], (False, True)):
                    configs.append(LaunchConfig(method, classes, "backward", dtype, means, means_grad=grad))
            configs += [LaunchConfig(method, classes, "forward", "float32", hard=hard, aligned=False)
                        for hard in (False, True)]
            configs.append(LaunchConfig(method, classes, "backward", "float32", aligned=False))
    return configs


class CompileOnlyDriver:
    """Stands in for Triton's active driver: a real GPU target, no CUDA needed. Its device id is the arch, so
    Triton's per-device kernel caches keep each target's kernels apart."""

    def __init__(self, arch):
        from triton.backends.compiler import GPUTarget
        self.arch = arch
        self.target = GPUTarget("cuda", arch, 32)

    def get_current_target(self):
        return self.target

    def get_current_device(self):
        return self.arch

    def get_current_stream(self, device=None):
        return 0


def available_archs():
    """The targets this Triton can build for: its NVIDIA backend's ptxas knows sm_100 only with the
    Blackwell assembler bundled."""
    import triton.backends.nvidia as nvidia
    bin_dir = os.path.join(os.path.dirname(nvidia.__file__), "bin")
    blackwell = os.path.exists(os.path.join(bin_dir, "ptxas-blackwell"))
    return tuple(a for a in DEFAULT_ARCHS if a < 100 or blackwell)


class CompileSession:
    """Within `with CompileSession(arch) as session:`, kernel launches compile for `arch` instead of running;
    session.compiled holds (kernel name, CompiledKernel) of each launch."""

    def __init__(self, arch):
        self.arch = arch
        self.compiled = []

    def __enter__(self):
        from triton.runtime import driver
        from triton.runtime.jit import JITFunction
        if os.environ.get("TRITON_INTERPRET") == "1":
            raise RuntimeError("compile_kernels needs the real compiler: unset TRITON_INTERPRET")
        self._run = JITFunction.run
        session = self

        def compile_instead(self, *args, grid, warmup, **kwargs):
            kernel = session._run(self, *args, grid=grid, warmup=True, **kwargs)
            session.compiled.append((self.fn.__name__, kernel))
            return kernel

        self._driver = driver._active  # None until Triton first needs one (and no GPU driver exists here)
        driver.set_active(CompileOnlyDriver(self.arch))
        JITFunction.run = compile_instead
        return self

    def __exit__(self, *exc):
        from triton.runtime import driver
        from triton.runtime.jit import JITFunction
        JITFunction.run = self._run
        driver._active = self._driver
        return False


def launch(config):
    """Call the op's launcher for one configuration on CPU tensors (the session compiles instead of running)."""
    from sgaplus.kernels import rounding
    from sgaplus.ops.rounding import RoundingConfig
    dtype = DTYPES[config.dtype]
    storage = torch.zeros(N_ELEMENTS + 1, dtype=dtype)
    y = storage[:N_ELEMENTS] if config.aligned else storage[1:]
    means = None if config.means is None else torch.zeros(N_ELEMENTS, dtype=DTYPES[config.means])
    tau, seed = torch.tensor(0.5), torch.tensor(1)
    cfg = RoundingConfig(config.method, config.classes, config.hard)
    if config.direction == "forward":
        rounding.forward(y, means, tau, seed, cfg)
    else:
        rounding.backward(y, means, torch.zeros_like(y), tau, seed, cfg, config.means_grad)


def describe(error):
    """One line for a compile error: the innermost cause's own words (Triton wraps it in source excerpts)."""
    while error.__cause__ is not None or error.__context__ is not None:
        error = error.__cause__ or error.__context__
    lines = [line.strip() for line in str(error).splitlines() if line.strip().strip("^")]
    return f"{type(error).__name__}: {lines[-1] if lines else ''}"


def compile_configs(arch, configs, progress=None):
    """[(config, kernel name, CompiledKernel or None, error or None)] for each configuration on `arch`."""
    results = []
    with CompileSession(arch) as session:
        for config in configs:
            before = len(session.compiled)
            try:
                launch(config)
                name, kernel = session.compiled[before]
                results.append((config, name, kernel, None))
            except Exception as error:  # the compiler's errors have many types; each is reported
                results.append((config, None, None, describe(error)))
            if progress:
                progress(len(results), len(configs))
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--arch", type=int, action="append", help="compute capability x10 (repeatable); default: "
                                                                     "80, 90 and 100 where available")
    parser.add_argument("-k", default="", help="only configurations whose name contains this text")
    parser.add_argument("--sample", action="store_true", help="only one configuration per method, class count, "
                        "direction, hardness and dtype (see sample())")
    args = parser.parse_args(argv)
    archs = args.arch or available_archs()
    configs = [c for c in (sample(launch_configs()) if args.sample else launch_configs()) if args.k in c.name]
    failed = 0
    for arch in archs:
        start = time.perf_counter()
        results = compile_configs(arch, configs)
        bad = [(c, e) for c, _, _, e in results if e is not None]
        failed += len(bad)
        print(f"sm_{arch}: {len(results) - len(bad)}/{len(results)} launch configurations compiled "
              f"({time.perf_counter() - start:.0f} s)")
        for config, error in bad:
            print(f"  FAILED sm_{arch} {config.name}: {error}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
