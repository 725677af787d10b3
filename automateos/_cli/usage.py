"""The CLI's own error for a command called the wrong way."""


class UsageError(Exception):
    """A mistake in how the command was called (exit status 2, like argparse's own)."""
