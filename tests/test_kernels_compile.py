"""Every launch configuration of the op's Triton kernels compiles for real GPU targets (sm_80 and sm_90; for
sm_100, where the installed Triton has its assembler, a sample of one configuration per method, direction,
hardness and dtype), without a GPU: tools/compile_kernels.py, run in subprocesses without the interpreter that the
rest of the suite uses. The interpreter checks the math, not what the compiler checks. A failure of one
configuration comes from Triton's front end, which all targets share; the sample checks what is sm_100's own (its
lowering, its assembler) at a quarter of the cost of a third full sweep (the suite's longest setup)."""
import atexit
import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"
sys.path.insert(0, str(TOOLS))

import compile_kernels  # noqa: E402


def start(args, before="", low_priority=False):
    """compile_kernels.main(args) in a subprocess with the real compiler (no TRITON_INTERPRET, no escape hatch
    for non-constexpr globals); `before` is Python run first."""
    env = {k: v for k, v in os.environ.items() if k not in ("TRITON_INTERPRET", "TRITON_ALLOW_NON_CONSTEXPR_GLOBALS")}
    code = "\n".join([f"import sys; sys.path.insert(0, {str(TOOLS)!r}); import compile_kernels", before,
                      f"sys.exit(compile_kernels.main({[str(a) for a in args]!r}))"])
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, preexec_fn=(lambda: os.nice(10)) if low_priority else None)


@functools.lru_cache(maxsize=None)
def compiling():
    """The compiler runs, one per target, started once. tests/conftest.py starts them as soon as the suite is
    collected, at low priority: they take minutes of CPU, which they take from what the other tests leave idle."""
    runs = {arch: start(["--arch", arch] + (["--sample"] if arch >= 100 else []), low_priority=True)
            for arch in compile_kernels.available_archs()}
    atexit.register(lambda: [run.kill() for run in runs.values() if run.poll() is None])  # an interrupted suite
    return runs


@pytest.fixture(scope="module")
def compiled_for_every_target():
    """{arch: (exit status, output)} of the compiler runs."""
    return {arch: (run.wait(timeout=1800), run.stdout.read()) for arch, run in compiling().items()}


def test_the_configuration_list_is_complete():
    configs = compile_kernels.launch_configs()
    names = [c.name for c in configs]
    assert len(names) == len(set(names)) == 224
    # 7 method/class pairs; forward: 2 (hard) x 8 (y dtype with means options) + 2 unaligned; backward: 13 + 1
    assert sum(c.direction == "forward" for c in configs) == 7 * (2 * 8 + 2)
    assert sum(c.direction == "backward" for c in configs) == 7 * (13 + 1)
    assert len(compile_kernels.sample(configs)) == 7 * 3 * 3  # forward soft and hard, backward; three dtypes


@pytest.mark.parametrize("arch", [80, 90])
def test_every_launch_configuration_compiles(compiled_for_every_target, arch):
    status, output = compiled_for_every_target[arch]
    assert status == 0, output
    assert f"sm_{arch}: 224/224 launch configurations compiled" in output


def test_every_launch_configuration_compiles_for_blackwell_where_triton_has_it(compiled_for_every_target):
    if 100 not in compiled_for_every_target:
        pytest.skip("this Triton has no sm_100 assembler")
    status, output = compiled_for_every_target[100]
    assert status == 0 and "sm_100: 63/63 launch configurations compiled" in output, output


def test_a_broken_kernel_fails_the_compile_check():
    """Negative control: the bug the interpreter let through (a module-level float where Triton needs a
    tl.constexpr global) makes the check fail, with the compiler's reason."""
    run = start(["--arch", 90, "-k", "cosine-2 forward float32 hard"],
                before="from sgaplus.kernels import scores; scores.HALF_PI = 1.5707963267948966")
    status, output = run.wait(timeout=600), run.stdout.read()
    assert status == 1, output
    assert "0/3 launch configurations compiled" in output and "Cannot access global variable HALF_PI" in output
