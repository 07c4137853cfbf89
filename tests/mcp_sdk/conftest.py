"""A real `openexec serve` on 127.0.0.1:0 for the MCP SDK tests, and the
offline verifier (`openexec verify`) for the receipts it returns.

The binary is $OPENEXEC_BIN, else target/debug/openexec of this repository.
"""

import json
import os
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def binary() -> str:
    return os.environ.get("OPENEXEC_BIN", str(ROOT / "target" / "debug" / "openexec"))


def openexec(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([binary(), *args], capture_output=True, text=True, timeout=60)


class Server:
    """A running server: its MCP URL and a verifier of its receipts."""

    def __init__(self, tmp: Path, env: dict[str, str]):
        self.tmp = tmp
        data = tmp / "data"
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENEXEC_BIND": "127.0.0.1:0",
            "OPENEXEC_DB_URL": f"sled://{data}",
            "OPENEXEC_CHECKPOINT_MEMO": str(tmp / "memo"),
            "OPENEXEC_PUBLISH_INTERVAL_MS": "0",
            "OPENEXEC_WORKERS": "2",
            "RUST_LOG": "warn",
            **env,
        }
        self.log = open(tmp / "stderr.log", "w")
        self.process = subprocess.Popen(
            [binary(), "serve"], env=environment, stdout=subprocess.PIPE, stderr=self.log, text=True
        )
        line = self.process.stdout.readline().strip()
        prefix = "openexec listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"server did not start: {(tmp / 'stderr.log').read_text()}")
        self.base = line[len(prefix):]
        self.url = self.base + "/mcp"
        with urllib.request.urlopen(self.base + "/ledger/key") as r:
            self.vkey = tmp / "log.vkey"
            self.vkey.write_bytes(r.read())
        self.count = 0

    def verify(self, execute_response: dict) -> str:
        """`openexec verify` on a `/execute` answer; its one-line verdict."""
        self.count += 1
        path = self.tmp / f"receipt-{self.count}.json"
        path.write_text(json.dumps(execute_response))
        out = openexec("verify", "--key", str(self.vkey), str(path))
        line = (out.stdout + out.stderr).strip()
        assert out.returncode == 0, line
        assert line.startswith("OK: "), line
        return line

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@pytest.fixture
def start(tmp_path):
    """Starts servers with extra environment variables; stops them after the test."""
    servers = []

    def run(**env: str) -> Server:
        directory = tmp_path / f"server-{len(servers)}"
        directory.mkdir()
        server = Server(directory, env)
        servers.append(server)
        return server

    yield run
    for server in servers:
        server.stop()
