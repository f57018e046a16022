"""``kb serve`` as a real process, for the replica and shutdown tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Served:
    def __init__(self, env: dict[str, str], log: Path, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
        environ.update(env, HF_HUB_OFFLINE="1", PYTHONPATH=str(ROOT),
                       KB_HOST="127.0.0.1", KB_PORT=str(self.port))
        self._out = log.open("wb")
        self.proc = subprocess.Popen([sys.executable, "-m", "kb", "serve", *args], env=environ,
                                     stdout=self._out, stderr=subprocess.STDOUT, cwd=ROOT)

    def wait_ready(self, seconds: float = 120.0) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"kb serve exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"kb serve not ready after {seconds} s:\n{self.output()}")

    def output(self, full: bool = False) -> str:
        if not self._out.closed:
            self._out.flush()
        text = self.log.read_text(errors="replace")
        return text if full else text[-4000:]

    def terminate(self, seconds: float = 60.0) -> int:
        """SIGTERM, and the exit code once it has drained."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(seconds)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
            self._out.close()
