"""Shared fixtures: the Rust binary, the cross-check runner, and a real
``openexec serve`` on a loopback port."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

REPO = Path(__file__).resolve().parents[3]


def openexec_bin() -> Path:
    return Path(os.environ.get("OPENEXEC_BIN", REPO / "target" / "debug" / "openexec"))


@pytest.fixture(scope="session")
def binary() -> Path:
    path = openexec_bin()
    if not path.exists():
        pytest.fail(f"{path} is missing: run `cargo build --bin openexec` (or set OPENEXEC_BIN)")
    return path


# Parts of a line that quote a JSON parser's own error text, which differs
# between serde_json and Python's json module; everything before it must match.
_PARSER_TEXT = re.compile(
    r"(entry is not valid JSON of the entry shape: |receipt is not JSON: |receipt has the wrong shape: "
    r"|consistency proof: (?!hash is not valid|hash must be)|not a rotation record: ).*"
)


def normalize(output: str) -> str:
    return "\n".join(_PARSER_TEXT.sub(r"\1…", line) for line in output.splitlines())


def write_files(root: Path, files: dict) -> None:
    for name, content in files.items():
        path = root / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_bytes(content.encode("utf-8"))


def run_rust(binary: Path, args: list[str], cwd: Path) -> tuple[int, str]:
    done = subprocess.run([str(binary), "verify", *args], cwd=cwd, capture_output=True, timeout=60)
    return done.returncode, done.stdout.decode("utf-8", "replace")


def run_python(args: list[str], cwd: Path) -> tuple[int, str]:
    from openexec_client.verify._cli import main

    out = io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out):
            code = main(args)
    finally:
        os.chdir(old)
    return code, out.getvalue()


@pytest.fixture
def workdir():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)
