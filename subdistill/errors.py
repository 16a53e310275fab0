"""The one exception type for mistakes a user can fix by changing their command."""


class UserError(Exception):
    """A bad recipe, override, path or input: printed as one line, exit code 2."""
