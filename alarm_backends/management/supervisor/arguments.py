"""The command-line options the render commands share."""

from __future__ import annotations

import argparse
from collections.abc import Mapping


def add_profile_argument(parser: argparse.ArgumentParser, profiles: Mapping[str, str], default: str) -> None:
    """``--profile``, one of ``profiles`` (name: description); the help describes each, the default marked."""
    described = (f"{name}: {text}" + (" (default)" if name == default else "") for name, text in profiles.items())
    parser.add_argument("--profile", choices=tuple(profiles), default=default, help="; ".join(described))
