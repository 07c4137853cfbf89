"""A real ``openexec serve`` on a loopback port with its own data
directory, and a fault-injecting HTTP proxy in front of it (drops
connections, answers 409/503 first) for the client's retries."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from pathlib import Path

import httpx


class Server:
    def __init__(self, binary: Path, data: Path, env: dict[str, str] | None = None) -> None:
        data.mkdir(parents=True, exist_ok=True)
        self.data = data
        self.log = open(data.with_suffix(".stderr.log"), "wb")
        full_env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "OPENEXEC_BIND": "127.0.0.1:0",
            "OPENEXEC_DB_URL": f"sled://{data}",
            "OPENEXEC_WORKERS": "2",
            "OPENEXEC_PUBLISH_INTERVAL_MS": "0",
            "RUST_LOG": "warn",
            **(env or {}),
        }
        self.proc = subprocess.Popen(
            [str(binary), "serve"], env=full_env, stdout=subprocess.PIPE, stderr=self.log
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().decode().strip()
        prefix = "openexec listening on "
        if not line.startswith(prefix):
            self.stop()
            raise RuntimeError(f"server did not start: {data.with_suffix('.stderr.log').read_text()}")
        self.url = line[len(prefix):]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


class FaultProxy:
    """Forwards to ``upstream`` after playing ``faults`` in order, one per
    request: ``"drop"`` closes the connection unanswered; ``"forward-drop"``
    forwards, then closes without relaying the answer (the request ran);
    ``(status, code, headers)`` answers with that error. Records every
    request body it received."""

    def __init__(self, upstream: str, faults: list) -> None:
        self.upstream = upstream
        self.faults = list(faults)
        self.bodies: list[dict] = []
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                return None

            def do_GET(self) -> None:
                self._handle(b"")

            def do_POST(self) -> None:
                self._handle(self.rfile.read(int(self.headers.get("Content-Length", "0"))))

            def _handle(self, body: bytes) -> None:
                if body:
                    proxy.bodies.append(json.loads(body))
                fault = proxy.faults.pop(0) if proxy.faults else None
                if fault == "drop":
                    self.close_connection = True
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() in ("content-type", "authorization")}
                if isinstance(fault, tuple):
                    status, code, extra = fault
                    payload = json.dumps({"code": code, "detail": f"injected {code}"}).encode()
                    self.send_response(status)
                    for k, v in extra.items():
                        self.send_header(k, v)
                    self._send(payload)
                    return
                answer = httpx.request(self.command, proxy.upstream + self.path, content=body or None, headers=headers, timeout=30)
                if fault == "forward-drop":
                    self.close_connection = True
                    return
                self.send_response(answer.status_code)
                for k, v in answer.headers.items():
                    if k.lower() in ("content-type", "retry-after", "idempotent-replayed"):
                        self.send_header(k, v)
                self._send(answer.content)

            def _send(self, payload: bytes) -> None:
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
