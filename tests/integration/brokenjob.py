"""A job module that exists but cannot be imported: its dependency is missing."""

import bkm_no_such_dependency  # noqa: F401


def main() -> None:
    """Never reached."""
