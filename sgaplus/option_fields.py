"""Settings fields that are command-line options: `option(default, help, ...)` keeps an option's help, type and
choices with the field it sets, so that the command line declares its options from the settings objects
(cli.py) and a new field is a new option."""
import argparse
from dataclasses import field


def option(default=None, help="", **command_line):
    """A settings field with its command-line option: help, and argparse's type, choices, metavar, nargs, action
    ("boolean": --x/--no-x); also `exclusive` (a mutually exclusive group's name) and `off` (the help of an extra
    --no-NAME flag that sets it to 0)."""
    return field(default=default, metadata={"help": help, **command_line})


def positive_int(text):
    """An integer >= 1, or argparse's one-line refusal."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text}")
    return value


def on_off(text):
    """True for "on", False for "off"."""
    if text not in ("on", "off"):
        raise argparse.ArgumentTypeError(f"must be on or off, got {text!r}")
    return text == "on"


def same_option(cls, name):
    """A field declared as `cls`'s field `name` is (another settings object's option of the same meaning)."""
    declared = cls.__dataclass_fields__[name]
    return field(default=declared.default, metadata=declared.metadata)
