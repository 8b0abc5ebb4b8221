"""The `sgaplus` command line. It only parses and dispatches: each subcommand's options are declared from the fields
of the settings objects they fill (RefinementSettings' parts, ModelChoice, RatePoints: their help, defaults and
choices are the fields' metadata), and each cmd_* hands those objects to the command's job."""
import argparse
import sys
import warnings
from dataclasses import fields
from pathlib import Path

from . import __version__, decode_run, demo, refine_run
from .errors import INTERRUPTED, SgaplusError, UsageError
from .evaluate import run as evaluate_run
from .evaluate.points import RatePoints
from .files.bitstream import MAX_PIXELS
from .files.images import EVAL_IMAGES
from .files.loading import DEFAULT_BUNDLED_ARCHITECTURE
from .files.model_choice import ModelChoice
from .integration.run import run_program
from .option_fields import positive_int
from .pipeline import Outputs
from .refine.settings import PARTS, RefinementSettings

# What a user can cause: the package's own errors, and the OS's word on files the user named.
USER_ERRORS = (SgaplusError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError)
TARGET = ("target_bpp", "target_bytes")  # refine's alone: a target size per file
# the options each subcommand does not take, of the settings objects it fills
SKIP = {"refine": (), "evaluate": ("lmbda", *TARGET), "demo": ("batch_size",),
        "run": ("device", "batch_size", *TARGET)}
DEMO_MODEL = ("bundled", "quality")


def add_options(parser, cls, skip=()):
    """An option per field of the settings dataclass `cls` (but `skip`), declared from the field's metadata; its
    value lands at dest "Class.field" (values() collects them)."""
    exclusive = {}
    for declared in fields(cls):
        if declared.name in skip:
            continue
        meta = dict(declared.metadata)
        text, off, together = meta.pop("help"), meta.pop("off", None), meta.pop("exclusive", None)
        if meta.get("action") == "boolean":
            meta["action"] = argparse.BooleanOptionalAction
        if "action" not in meta and "choices" not in meta:
            meta.setdefault("metavar", declared.name.upper())  # not the dest's "Class.field"
        if together and together not in exclusive:
            exclusive[together] = parser.add_mutually_exclusive_group()
        where = exclusive[together] if together else parser
        flag, dest = f"--{declared.name.replace('_', '-')}", f"{cls.__name__}.{declared.name}"
        where.add_argument(flag, dest=dest, default=declared.default, help=text.replace("%", "%%"), **meta)
        if off:
            where.add_argument(f"--no-{flag[2:]}", dest=dest, action="store_const", const=0, help=off)


def values(args, cls):
    """The settings object `cls` of the parsed options (its defaults where the subcommand has no option)."""
    return cls(**{f.name: getattr(args, f"{cls.__name__}.{f.name}") for f in fields(cls)
                  if hasattr(args, f"{cls.__name__}.{f.name}")})


def settings_of(args):
    """The RefinementSettings of the parsed options, checked (a one-line UsageError before any work)."""
    return RefinementSettings(**{part: values(args, cls) for part, cls in PARTS.items()}).checked()


def outputs_of(args):
    return Outputs(Path(args.out), args.force, getattr(args, "resume", False))


def cmd_refine(args):
    """Refine images into bitstreams, reconstructions and metrics (refine_run.py)."""
    return refine_run.run(refine_run.RefineJob(tuple(args.images), outputs_of(args), values(args, ModelChoice),
                                               settings_of(args)))


def cmd_evaluate(args):
    """The RD curves of images with and without refinement (sgaplus/evaluate/)."""
    return evaluate_run.run(evaluate_run.EvaluateJob(tuple(args.images), outputs_of(args), values(args, RatePoints),
                                                     settings_of(args)))


def cmd_demo(args):
    return demo.run(demo.DemoJob(args.image, args.crop, values(args, ModelChoice), settings_of(args)))


def cmd_decode(args):
    return decode_run.run(args.file, outputs_of(args), values(args, ModelChoice), args.max_pixels)


def cmd_run(args):
    """Run a Python program with every CompressionModel's compress refined (sgaplus/integration/run.py)."""
    if bool(args.module) == bool(args.script):
        raise UsageError("name one program to run: -m MODULE [ARGS] or SCRIPT.py [ARGS]")
    program, *arguments = args.module or args.script
    return run_program(program, arguments, bool(args.module), settings_of(args), values(args, ModelChoice).model_calls)


class _DefaultsHelp(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default, unless it has none (None) or is an off switch."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def add_settings(parser, command):
    """The refinement settings' options (all of them in one group), but those the command does not take."""
    group = parser.add_argument_group("refinement")
    for cls in PARTS.values():
        add_options(group, cls, SKIP[command])


def add_outputs(parser, what, resume=True, required=False):
    parser.add_argument("--out", required=required, default=None if required else "sgaplus_out",
                        help="output folder")
    parser.add_argument("--force", action="store_true", help=f"overwrite {what}")
    if resume:
        parser.add_argument("--resume", action="store_true", help="continue an interrupted run in the same --out: "
                                                                  "keep what it finished")


def build_parser():
    parser = argparse.ArgumentParser(prog="sgaplus", description="SGA+ latent refinement for learned image codecs")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    command = {"formatter_class": _DefaultsHelp}
    refine = sub.add_parser("refine", help="refine images and write bitstreams, reconstructions and metrics",
                            **command)
    refine.add_argument("images", nargs="+", metavar="IMAGE")
    add_outputs(refine, "existing outputs (never an input image)")
    add_options(refine.add_argument_group(f"model (default: the bundled {DEFAULT_BUNDLED_ARCHITECTURE})"),
                ModelChoice)
    add_settings(refine, "refine")
    refine.set_defaults(func=cmd_refine)
    dec = sub.add_parser("decode", help="decode a bitstream to a PNG", **command)
    dec.add_argument("file", metavar="FILE.bin")
    dec.add_argument("--out", required=True, metavar="IMAGE.png", help="the PNG to write")
    dec.add_argument("--force", action="store_true", help="overwrite an existing PNG")
    add_options(dec, ModelChoice, skip=("bundled", "model", "quality", "level", "gain"))
    dec.add_argument("--max-pixels", type=positive_int, default=MAX_PIXELS,
                     help="refuse bitstreams of larger images (a crafted header must not exhaust memory)")
    dec.set_defaults(func=cmd_decode)
    evaluate = sub.add_parser("evaluate", help="the RD curve of images with and without refinement, in "
                                               "CompressAI's format", **command)
    evaluate.add_argument("images", nargs="+", metavar="IMAGE")
    add_outputs(evaluate, "an earlier evaluation's outputs", required=True)
    add_options(evaluate.add_argument_group(f"rate points (default: every bundled {DEFAULT_BUNDLED_ARCHITECTURE} "
                                            f"model)"), RatePoints)
    add_settings(evaluate, "evaluate")
    evaluate.set_defaults(func=cmd_evaluate)
    demo_parser = sub.add_parser("demo", help="refine a shipped sample image with the bundled model (under a minute "
                                              "on a CPU)", **command)
    demo_parser.add_argument("--image", default=EVAL_IMAGES[0], choices=EVAL_IMAGES, help="held-out sample image")
    demo_parser.add_argument("--crop", type=positive_int, default=256, help="side of the top-left square crop")
    add_options(demo_parser, ModelChoice, skip=[f.name for f in fields(ModelChoice) if f.name not in DEMO_MODEL])
    add_settings(demo_parser, "demo")
    demo_parser.set_defaults(func=cmd_demo)
    run = sub.add_parser("run", help="run a Python program (SCRIPT.py or -m MODULE) with every CompressionModel's "
                                     "compress refined", usage="sgaplus run [options] (-m MODULE | SCRIPT.py) "
                                                               "[ARGS ...]", **command)
    add_settings(run, "run")
    add_options(run, ModelChoice, skip=[f.name for f in fields(ModelChoice) if f.name != "model_calls"])
    run.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE [ARGS]",
                     help="run a module as python -m does; what follows are its arguments")
    run.add_argument("script", nargs=argparse.REMAINDER, metavar="SCRIPT.py [ARGS]", help="or a script")
    run.set_defaults(func=cmd_run)
    return parser


def _warn_in_one_line(message, category, filename, lineno, file=None, line=None):
    print(f"sgaplus: warning: {message}", file=sys.stderr)


def main(argv=None):
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated")  # raised inside compressai
    args = build_parser().parse_args(argv)
    show = warnings.showwarning
    warnings.showwarning = _warn_in_one_line
    try:
        return args.func(args)
    except USER_ERRORS as error:
        print(f"sgaplus: error: {error}", file=sys.stderr)
        return getattr(error, "exit_status", 1)
    except KeyboardInterrupt:
        print("sgaplus: interrupted", file=sys.stderr)
        return INTERRUPTED
    finally:
        warnings.showwarning = show


if __name__ == "__main__":
    sys.exit(main())
