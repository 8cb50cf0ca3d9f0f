"""celery-redbeat's own test suite (the sdist of the pinned release) against the patched scheduler, on the real Redis.

The suite runs in a subprocess from its sdist's root (``.cache/upstream``, fetched by ``make install-dev``), with
``tests/upstream/bkm_upstream_plugin.py`` attaching the project (see there). Its junit XML is held to
``tests/upstream/differences.py``: every upstream test passes, except exactly the listed ones, which must fail (a
listed test that passes fails this test: the list stays exact), and the README names each. Upstream's own
``@unittest.skip`` tests are reported, not failed. The Redis DB is ``TEST_REDBEAT_DB``; ``BKM_UPSTREAM_REDBEAT_DB``
picks another one for development (the upstream fixtures flush it).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.conftest import REDIS_HOST, REDIS_PORT, TEST_REDBEAT_DB
from tests.upstream import fetch
from tests.upstream.differences import DIFFERENCES, UPSTREAM_TESTS, stock_only

pytestmark = pytest.mark.redis

DB_VARIABLE = "BKM_UPSTREAM_REDBEAT_DB"
PLUGIN = Path(fetch.__file__).with_name("bkm_upstream_plugin.py")
README_SECTION = "### Against celery-redbeat's own tests"
RUN_TIMEOUT = 180


@dataclass(frozen=True)
class SuiteOutcome:
    passed: set[str]
    failed: dict[str, str]  # node id → the first line of its failure or error
    skipped: dict[str, str]  # node id → upstream's reason


def node_id(classname: str, name: str) -> str:
    """A junit testcase's pytest node id: every upstream test is a method of a TestCase class in tests/*.py."""
    *module, cls = classname.split(".")
    return f"{'/'.join(module)}.py::{cls}::{name}"


def read_junit(path: Path) -> SuiteOutcome:
    outcome = SuiteOutcome(set(), {}, {})
    for case in ET.parse(path).getroot().iter("testcase"):
        nodeid = node_id(case.get("classname", ""), case.get("name", ""))
        if not (fetch.SDIST_ROOT / nodeid.split("::")[0]).is_file():
            raise AssertionError(f"junit testcase {nodeid!r} names no file of the sdist")
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        skip = case.find("skipped")
        if problem is not None:
            outcome.failed[nodeid] = ((problem.get("message") or "").splitlines() or [""])[0][:200]
        elif skip is not None:
            outcome.skipped[nodeid] = skip.get("message") or ""
        else:
            outcome.passed.add(nodeid)
    return outcome


def run_upstream(tmp_path: Path, url: str) -> tuple[SuiteOutcome, dict[str, list[str]]]:
    junit, reach = tmp_path / "upstream.xml", tmp_path / "reach.json"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS")}
    # Only the plugin's own directory: the repository's root would offer its `tests` package for the upstream one.
    env.update(PYTHONPATH=str(PLUGIN.parent), BKM_UPSTREAM_REDIS_URL=url, BKM_UPSTREAM_REACH=str(reach))
    root = fetch.SDIST_ROOT
    command = [
        # -P: the cwd (the sdist's root) stays off sys.path, so the installed redbeat is under test, not the sdist's.
        sys.executable, "-P", "-m", "pytest", "tests", "-p", PLUGIN.stem, "-p", "no:cacheprovider", "-q", "--tb=short",
        f"--rootdir={root}", f"--confcutdir={root}", "-c", str(root / "setup.cfg"), f"--junitxml={junit}",
    ]  # fmt: skip
    proc = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT)
    # 0: all passed, 1: some failed; anything else (usage or collection error, interrupted) is the harness's fault.
    output = f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    assert proc.returncode in (0, 1) and junit.is_file(), f"the upstream run exited {proc.returncode}:\n{output}"
    return read_junit(junit), json.loads(reach.read_text(encoding="utf-8"))


def readme_section() -> str:
    text = (fetch.REPO / "README.md").read_text(encoding="utf-8")
    start = text.find(README_SECTION)
    assert start >= 0, f"README.md has no {README_SECTION!r} section"
    following = re.search(r"^#{1,3} ", text[start + len(README_SECTION) :], flags=re.MULTILINE)
    return text[start : start + len(README_SECTION) + following.start()] if following else text[start:]


def test_upstream_suite_passes_but_for_the_listed_differences(
    redis_service: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert fetch.pinned_version() == fetch.VERSION, "tests/upstream/fetch.py and pyproject.toml pin other versions"
    if not fetch.fetched():
        pytest.fail(f"celery-redbeat {fetch.VERSION}'s suite is not in {fetch.SDIST_ROOT}: run `make install-dev` "
                    "(or `python -m tests.upstream.fetch`)", pytrace=False)  # fmt: skip
    db = int(os.environ.get(DB_VARIABLE) or TEST_REDBEAT_DB)
    try:
        outcome, reach = run_upstream(tmp_path, f"redis://{REDIS_HOST}:{REDIS_PORT}/{db}")
    finally:
        redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db).flushdb()
    ran = outcome.passed | outcome.failed.keys()
    reached = {nodeid for nodeid, modules in reach.items() if modules}
    with capsys.disabled():
        print(f"\ncelery-redbeat {fetch.VERSION}'s suite on the patched scheduler: "
              f"{len(ran) + len(outcome.skipped)} tests, {len(outcome.passed)} passed, {len(outcome.failed)} failed "
              f"(listed differences), {len(outcome.skipped)} skipped by upstream; {len(reached)} ran code of "
              f"patches/redbeat ({dict(Counter(m for modules in reach.values() for m in modules))})")  # fmt: skip

    unexpected = {nodeid: why for nodeid, why in outcome.failed.items() if nodeid not in DIFFERENCES}
    assert not unexpected, "upstream tests failing that differences.py does not list:\n" + "\n".join(
        f"  {nodeid}: {why}" for nodeid, why in sorted(unexpected.items())
    )
    stale = {nodeid for nodeid in DIFFERENCES if nodeid not in outcome.failed}
    assert not stale, "listed in differences.py but not failing (remove them, and from the README):\n" + "\n".join(
        f"  {nodeid}: {'passes' if nodeid in outcome.passed else 'skipped' if nodeid in outcome.skipped else 'absent'}"
        for nodeid in sorted(stale)
    )
    assert len(ran) + len(outcome.skipped) == UPSTREAM_TESTS, "the upstream suite's size changed"
    section = readme_section()
    unnamed = sorted(nodeid for nodeid in DIFFERENCES if nodeid not in section)
    assert not unnamed, f"README.md's {README_SECTION!r} does not name: {unnamed}"
    # The suite exercises the project: every test that ran reached patches/redbeat, but those testing stock code the
    # project uses unchanged (and those must not, or STOCK_ONLY is stale).
    stock = {nodeid for nodeid in ran if stock_only(nodeid)}
    assert not (ran - stock) - reached, f"ran only stock code, not in STOCK_ONLY: {sorted((ran - stock) - reached)}"
    assert not stock & reached, f"reach patches/redbeat, so STOCK_ONLY is stale: {sorted(stock & reached)}"
