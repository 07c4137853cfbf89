"""The Python verifier against `openexec verify`, verdict for verdict:
every case (the project's vectors and variants broken one check at a
time, tests/_cases.py) is run through both, and the exit code and the
output lines must be the same. Lines quoting a JSON parser's own error
text are compared up to that text (serde_json and Python word them
differently)."""

from __future__ import annotations

import pytest

from _cases import all_cases
from conftest import normalize, run_python, run_rust, write_files

CASES = all_cases()


def test_cases_reach_every_check(tmp_path):
    """The cases hold valid and invalid receipts whose failures reach each
    check of docs/FORMATS.md §13, the CLI's and the policy's (the outputs
    are the Python verifier's, equal to the Rust one's by the test below)."""
    outputs = []
    for case in CASES:
        d = tmp_path / case.name
        d.mkdir()
        write_files(d, case.files)
        outputs.append(run_python(case.args, d)[1])
    for expected in (
        "OK: entry", "receipts verified", "receipts failed", "verifier key:",
        "receipt format is not", "entry: entry is not valid JSON", "entry bytes are not canonical",
        "unknown entry version", "invalid entry field `index`", "invalid entry field `replay_of`",
        "invalid entry field `principal`", "invalid entry field `effects`", "invalid entry field `prev`",
        "entry origin", "does not match the entry index", "entry signature is invalid",
        "checkpoint: malformed signed note", "checkpoint: checkpoint signature is invalid",
        "checkpoint: checkpoint is not signed by the log key", "checkpoint: malformed checkpoint body",
        "is not the log origin", "inclusion proof is for tree size", "inclusion proof: proof has the wrong shape",
        "inclusion proof: proof does not match", "trusted checkpoint:", "consistency with the trusted checkpoint",
        "add --consistency", "quorum not met", "a cosignature from a policy witness is invalid",
        "policy: policy line", "policy: policy has no quorum line", "is not in the policy", "tlog-proof:",
        "receipt is not JSON", "receipt has the wrong shape", "stream did not contain valid UTF-8",
        "No such file or directory", "policy quorum met", "consistent with the trusted checkpoint",
        "a replay of entry", "effects at-most-once", "handler registry",
    ):
        assert any(expected in out for out in outputs), expected
    assert sum(out.startswith("OK") for out in outputs) > 30
    assert len(CASES) > 700


# A note carrying a valid signature and then a bad one from the same known
# key: C2SP signed-note (and docs/FORMATS.md §9, §14) has every line of a
# known key verified, so both verifiers refuse it.
REPEATED_KEY_LINES = {
    "checkpoint-dup-log-garbage-after": "FAILED: checkpoint: checkpoint signature is invalid\n",
    "policy-none-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-w0-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-w1-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-two-of-three-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-all-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-any-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
    "policy-nested-cosigned-dup-garbage": "FAILED: a cosignature from a policy witness is invalid\n",
}


@pytest.mark.parametrize("name", sorted(REPEATED_KEY_LINES))
def test_a_bad_second_line_of_a_known_key_refuses_the_note(name, binary, workdir):
    """Both verifiers refuse the note, with the same line."""
    case = next(c for c in CASES if c.name == name)
    write_files(workdir, case.files)
    assert run_python(case.args, workdir) == (1, REPEATED_KEY_LINES[name])
    assert run_rust(binary, case.args, workdir) == (1, REPEATED_KEY_LINES[name])


@pytest.mark.parametrize("case", [pytest.param(c, id=c.name) for c in CASES])
def test_same_verdict_as_openexec_verify(case, binary, workdir):
    write_files(workdir, case.files)
    rust_code, rust_out = run_rust(binary, case.args, workdir)
    py_code, py_out = run_python(case.args, workdir)
    assert (py_code, normalize(py_out)) == (rust_code, normalize(rust_out))
    assert rust_code in (0, 1)


@pytest.mark.parametrize(
    "args",
    [[], ["r.json"], ["--key", "k.txt"], ["--key", "k.txt", "--policy", "p", "r.json"], ["--bogus", "r.json"]],
)
def test_argument_errors_exit_2_in_both(args, binary, workdir):
    import subprocess
    import sys

    rust_code, _ = run_rust(binary, args, workdir)
    py = subprocess.run([sys.executable, "-m", "openexec_client.verify", *args], cwd=workdir, capture_output=True)
    assert rust_code == py.returncode == 2
