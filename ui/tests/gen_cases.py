"""Writes the cross-check cases of the browser verifier: every case of
clients/python/tests/_cases.py that fits the page (one receipt text, a key
given as text, optional trusted checkpoint and consistency proof; no policy,
no missing or undecodable files, no several files), each with the lines and
exit code of the real `openexec verify` on it.

usage: python3 gen_cases.py <openexec binary> <out.json>
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(REPO / "clients" / "python" / "tests"), str(REPO / "clients" / "python" / "src")]

from _cases import all_cases  # noqa: E402


def page_form(case) -> dict | None:
    """The case as the page takes it, or None when it does not fit."""
    args = list(case.args)
    opts: dict[str, str] = {}
    files = []
    while args:
        a = args.pop(0)
        if a in ("--key", "--checkpoint", "--consistency", "--policy"):
            opts[a] = args.pop(0)
        else:
            files.append(a)
    if "--policy" in opts or len(files) != 1 or "--key" not in opts:
        return None

    def text(name: str) -> str | None:
        content = case.files.get(name)
        if isinstance(content, bytes):
            return None
        return content

    key = opts["--key"]
    if "+" not in key:
        key = text(key)
    receipt = text(files[0])
    if key is None or receipt is None:
        return None
    out = {"name": case.name, "file": files[0], "key": key, "receipt": receipt, "checkpoint": None, "consistency": None}
    for opt, field in (("--checkpoint", "checkpoint"), ("--consistency", "consistency")):
        if opt in opts:
            out[field] = text(opts[opt])
            if out[field] is None:
                return None
    return out


def main() -> None:
    binary, target = str(Path(sys.argv[1]).resolve()), sys.argv[2]
    cases = []
    for case in all_cases():
        form = page_form(case)
        if form is None:
            continue
        with tempfile.TemporaryDirectory() as d:
            for name, content in case.files.items():
                data = content if isinstance(content, bytes) else content.encode("utf-8")
                (Path(d) / name).write_bytes(data)
            done = subprocess.run([binary, "verify", *case.args], cwd=d, capture_output=True, timeout=60)
        form["code"] = done.returncode
        form["lines"] = done.stdout.decode("utf-8").splitlines()
        cases.append(form)
    Path(target).write_text(json.dumps(cases))
    print(f"{len(cases)} cases written to {target}")


if __name__ == "__main__":
    main()
