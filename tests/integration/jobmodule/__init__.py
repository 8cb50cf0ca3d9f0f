"""A job given as a module path: the loader runs its ``main()``."""

from tests.integration.jobs import record_effect


def main() -> None:
    record_effect()
