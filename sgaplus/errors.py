"""The package's error types for a user's mistake (a bad file, image, option or model). The command line
turns these, and only these (plus the few OS errors of files the user named), into one line on stderr;
anything else is a bug and keeps its traceback."""

INTERRUPTED = 130  # the command line's exit status for a run stopped by Ctrl-C (the shell's)


class SgaplusError(Exception):
    """Base of the errors a user can cause and fix."""
    exit_status = 1  # the command line's: 1 for a bad input or option, 2 for a model it cannot build or refine


class UsageError(SgaplusError, ValueError):
    """An option or argument that cannot be used (a device this machine lacks, a crop larger than the image)."""


class ModelError(SgaplusError, ValueError):
    """A model the user named that cannot be built or refined as given (a model class that does not import or
    construct, weights that do not fit it, a forward the refiner cannot relax)."""
    exit_status = 2
