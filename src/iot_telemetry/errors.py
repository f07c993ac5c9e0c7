"""Exceptions shared across the package."""


class InputError(ValueError):
    """Input that the user can fix: a bad file, path, parameter or option.

    The command line reports the message and exits with status 2 instead of
    printing a traceback.
    """
