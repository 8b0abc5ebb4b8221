"""The package's error types for a user's mistake (a bad file, image, option or model). The command line
turns these, and only these (plus the few OS errors of files the user named), into one line on stderr;
anything else is a bug and keeps its traceback."""


class SgaplusError(Exception):
    """Base of the errors a user can cause and fix."""


class UsageError(SgaplusError, ValueError):
    """An option or argument that cannot be used (a device this machine lacks, a crop larger than the image)."""
