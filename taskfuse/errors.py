"""The one exception type taskfuse raises for bad input, so the CLI can print it without a traceback."""


class TaskfuseError(ValueError):
    """Bad input or configuration. The message names the offending file or key and how to fix it."""
