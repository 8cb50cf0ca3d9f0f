"""The README's table of differences from the original says, for each, what the original did, what the platform
does, why, and how to get the original's behaviour back; every setting it names there is one the platform reads."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings

REPO = Path(__file__).resolve().parents[2]


def rows() -> list[list[str]]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Design: what differs from the original, and why\n", 1)[1].split("\n#", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("|")]
    header, _rule, *body = lines
    assert [cell.strip() for cell in header.strip("|").split("|")] == [
        "original", "here", "why", "to restore the original"]  # fmt: skip
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in body]


def test_every_difference_has_its_reason_and_its_way_back() -> None:
    table = rows()
    assert len(table) >= 20
    for row in table:
        assert len(row) == 4 and all(row), row


def test_the_settings_it_names_are_the_platforms() -> None:
    named = {name for row in rows() for name in re.findall(r"`([A-Z][A-Z0-9_]{3,})(?: = [^`]*)?`", row[3])}
    assert {"CLUSTER_SCOPED_NAMES", "CELERY_SERIALIZER", "REDBEAT_LOCK_TIMEOUT", "HASH_RING_SEPARATE_LABELS"} <= named
    environment_only = {"BK_MONITOR_HOST_ADDR"}  # read into HOST_ADDR
    unknown = sorted(name for name in named - environment_only if not hasattr(settings, name))
    assert unknown == []
