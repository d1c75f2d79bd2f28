"""The one exception type for mistakes a person can fix: its message says what is wrong and what to do."""


class UserError(Exception):
    """Bad input, a missing tool, a port in use: ends the command with one line, no traceback."""
