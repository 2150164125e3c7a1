"""Router worker processes for tests: start, SIGKILL, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path


class RouterProcess:
    def __init__(self, bootstrap: str, name: str = "router", *args: str) -> None:
        self.bootstrap, self.name, self.args = bootstrap, name, args
        self.datadir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.log = self.datadir / "worker.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> RouterProcess:
        self.starts += 1
        with open(self.log, "ab") as out:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "continuum_events",
                    "router",
                    "-b",
                    self.bootstrap,
                    "--datadir",
                    str(self.datadir),
                    *self.args,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout: float = 30) -> int | None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            return self.process.wait(timeout)
        return self.process.returncode if self.process else None

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) if self.log.exists() else ""
