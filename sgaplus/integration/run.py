"""`sgaplus run`: another Python program (a script, or a module as `python -m` runs it) run in this process with
every CompressionModel's compress refined: the classes that exist and those the program defines. Its standard
output is its own (sgaplus writes to stderr); its exit status is returned."""
import contextlib
import importlib.util
import os
import runpy
import sys
import traceback
from pathlib import Path

from ..errors import SgaplusError, UsageError
from ..files.loading import calls_named
from .patch import ClassPatch, refiner_maker


def run_program(program, arguments, module, settings, calls=None):
    """Run `program` (a script's path, or with module=True a module's name) with `arguments` as its command line,
    every CompressionModel's compress refined with `settings` (a RefinementSettings; lmbda None: the known weights'
    training lambda; eager unless compile=True: the images are not known before they are compressed), called
    through calls (a ModelCalls, or FILE.py:NAME or package.module:NAME naming one; None: by the compress call's
    own arguments); its exit status. UsageError or ModelError before running anything when the program or the
    calls do not exist or a setting is refused."""
    check_program(program, module)
    refiner_for = refiner_maker(settings.resolved().for_pixels([]), who="sgaplus run")
    lmbda, calls = settings.objective.lmbda, calls_named(calls)
    from compressai.models import CompressionModel
    with ClassPatch(lmbda, refiner_for, announce=True, calls=calls) as patched, as_main(program, arguments, module):
        patched.add_subclasses(CompressionModel)
        try:
            if module:
                runpy.run_module(program, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(program, run_name="__main__")
        except SystemExit as exit:
            return exit_status(exit.code)
        except SgaplusError:
            raise  # a patched compress refused the model: sgaplus's one line
        except Exception:  # the program's own error: its traceback, as python prints it, and python's status
            traceback.print_exc()
            return 1
    return 0


def check_program(program, module):
    if not module:
        if not Path(program).is_file():
            raise UsageError(f"no such script: {program}")
        return
    try:
        found = importlib.util.find_spec(program)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise UsageError(f"no module named {program!r}")


@contextlib.contextmanager
def as_main(program, arguments, module):
    """sys.argv and sys.path[0] as python sets them for the program (its folder, or the current one for -m)."""
    argv, path = sys.argv[:], sys.path[:]
    sys.argv = [program, *arguments]
    sys.path.insert(0, os.getcwd() if module else str(Path(program).resolve().parent))
    try:
        yield
    finally:
        sys.argv, sys.path[:] = argv, path


def exit_status(code):
    """The status python exits with for SystemExit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1
