"""Choosing and preparing a local broker, without starting one: what is missing is named with
the command that installs it, and `run` falls back to Tansu only when Kafka was not asked for."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import typer

from continuum_events import broker
from continuum_events.broker import (
    ENGINE_ENV,
    KAFKA_LIBS_ENV,
    BrokerError,
    KafkaBroker,
    default_engine,
    engine_unavailable,
    free_ports,
    java_binary,
    kafka_classpath,
    kafka_version,
)


def test_missing_jars_name_the_command_that_installs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KAFKA_LIBS_ENV, str(tmp_path))
    with pytest.raises(BrokerError) as caught:
        kafka_classpath()
    message = str(caught.value)
    assert f"Apache Kafka {kafka_version()} jars are not in {tmp_path}" in message
    assert "make kafka" in message and "--engine tansu" in message


def test_missing_java_names_the_package(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(BrokerError, match="apt-get install openjdk-17-jre-headless"):
        java_binary()
    assert "openjdk-17-jre-headless" in (engine_unavailable("kafka") or "")


def test_an_old_java_is_refused_by_its_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    java = tmp_path / "jdk" / "bin" / "java"
    java.parent.mkdir(parents=True)
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.22\" 2024-01-16' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "jdk"))
    with pytest.raises(BrokerError, match=r"needs Java 17 or newer.*11\.0\.22"):
        java_binary()


def test_the_engine_comes_from_the_environment_and_a_wrong_one_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENGINE_ENV, raising=False)
    assert default_engine() == "kafka"
    monkeypatch.setenv(ENGINE_ENV, "Tansu")
    assert default_engine() == "tansu"
    monkeypatch.setenv(ENGINE_ENV, "redpanda")
    with pytest.raises(BrokerError, match="expected one of kafka, tansu"):
        default_engine()


def test_run_falls_back_to_tansu_only_when_kafka_was_not_asked_for(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from continuum_events.cli import run

    monkeypatch.delenv(ENGINE_ENV, raising=False)
    monkeypatch.setattr(run, "engine_unavailable", lambda engine: "no Java here" if engine == "kafka" else None)
    assert run._choose_engine(None) == "tansu"
    said = capsys.readouterr()
    assert "falling back to Tansu" in " ".join((said.out + said.err).split())
    with pytest.raises(typer.Exit):
        run._choose_engine("kafka")  # asked for by name: an error, not a silent substitute
    said = capsys.readouterr()
    assert "no Java here" in said.out + said.err


def test_cluster_ids_never_look_like_an_option() -> None:
    ids = {broker._new_cluster_id() for _ in range(2_000)}
    assert len(ids) == 2_000 and not any(i.startswith("-") for i in ids)
    assert all(len(i) == 22 for i in ids)


def test_a_node_is_configured_as_the_production_shape_when_there_are_three(tmp_path: Path) -> None:
    cluster = KafkaBroker(nodes=3, data_dir=tmp_path)
    props = cluster._properties(cluster.nodes[0])
    assert props["default.replication.factor"] == "3" and props["min.insync.replicas"] == "2"
    assert props["unclean.leader.election.enable"] == "false"
    assert props["controller.quorum.voters"].count("@127.0.0.1:") == 3
    assert cluster.topology.replication_factor == 3
    single = KafkaBroker(data_dir=tmp_path / "one")
    assert single._properties(single.nodes[0])["min.insync.replicas"] == "1"


def test_a_data_directory_keeps_its_controller_ports(tmp_path: Path) -> None:
    first = KafkaBroker(data_dir=tmp_path)
    first._cluster_id()  # what a first start records
    again = KafkaBroker(data_dir=tmp_path)
    assert again.nodes[0].controller_port == first.nodes[0].controller_port
    assert os.path.exists(tmp_path / "cluster-id")


def test_a_relative_data_directory_is_made_absolute(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`make run` passes `.state/kafka`; each node runs in its own directory, so a relative
    path would point nowhere (the node exited at start: its config file not found)."""
    monkeypatch.chdir(tmp_path)
    node = KafkaBroker(data_dir=Path(".state/kafka"), log_path=Path(".state/kafka.log"))
    assert node.data_dir == tmp_path / ".state" / "kafka" and node.log_path.is_absolute()
    assert Path(node._properties(node.nodes[0])["log.dirs"]).is_absolute()


def test_free_ports_are_distinct_and_avoid_the_ports_already_taken() -> None:
    # A node's broker and controller listeners on one port is fatal for Kafka (seen once in the
    # suite: the broker's port, chosen and released earlier, came back as its controller's).
    taken = free_ports(3)
    chosen = free_ports(40, taken=set(taken))
    assert len(set(chosen)) == 40
    assert not set(chosen) & set(taken)
