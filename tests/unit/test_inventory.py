"""Inventory files: CSV and YAML, errors that say where, sharding that is stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from continuum_events.producers.inventory import InventoryError, from_added_event, load_inventory, shard_of


def test_csv_and_yaml_load_the_same_printers(tmp_path: Path) -> None:
    (tmp_path / "p.csv").write_text(
        "id,name,ip,location,community,snmp_port,tcp_ports\n"
        "p-1,Finance-01,10.0.0.7,Finance-3F,fin,1161,9100;631\n"
        "p-2,,10.0.0.8,,,,\n"
    )
    (tmp_path / "p.yaml").write_text(
        "printers:\n"
        "  - {id: p-1, name: Finance-01, ip: 10.0.0.7, location: Finance-3F,"
        " community: fin, snmp_port: 1161, tcp_ports: [9100, 631]}\n"
        "  - {id: p-2, ip: 10.0.0.8, tcp_ports: []}\n"
    )
    csv_rows, yaml_rows = load_inventory(tmp_path / "p.csv"), load_inventory(tmp_path / "p.yaml")
    assert csv_rows == yaml_rows
    assert csv_rows[0].target().community == "fin" and csv_rows[1].community == "public"
    assert csv_rows[1].tcp_ports == (), "an empty tcp_ports cell means no TCP check"
    assert csv_rows[0].event_fields() == {
        "printer_id": "p-1",
        "printer_name": "Finance-01",
        "printer_ip": "10.0.0.7",
        "printer_location": "Finance-3F",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id,ip\np-1,\n", "line 2: ip: Field required"),
        ("id,ip,snmp_port\np-1,10.0.0.1,70000\n", "line 2: snmp_port"),
        ("id,ip,colour\np-1,10.0.0.1,red\n", "line 2: colour: Extra inputs"),
        ("id,ip\np-1,10.0.0.1\np-1,10.0.0.2\n", "line 3: printer id 'p-1' already defined at line 2"),
    ],
)
def test_errors_name_the_line_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(InventoryError, match=message):
        load_inventory(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="does not exist"):
        load_inventory(tmp_path / "nope.csv")


def test_shards_split_a_fleet_completely_and_stably() -> None:
    ids = [f"p-{i}" for i in range(1000)]
    shards = [[i for i in ids if shard_of(i, 4) == s] for s in range(4)]
    assert sorted(sum(shards, [])) == sorted(ids) and all(150 < len(s) < 350 for s in shards)
    assert [shard_of(i, 4) for i in ids] == [shard_of(i, 4) for i in ids]


def test_a_printer_added_in_continuum_gets_the_probes_defaults() -> None:
    entry = from_added_event(
        {"printer_id": "p-9", "printer_ip": "10.1.1.9", "printer_name": "New"}, {"community": "corp"}
    )
    assert entry is not None and entry.community == "corp" and entry.name == "New"
    assert from_added_event({"printer_id": "p-10"}, {}) is None


def test_snmpv3_needs_a_user_and_its_keys_from_the_environment(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "v3.yaml"
    path.write_text("- {id: p-1, ip: 10.0.0.1, version: '3', v3_auth_key_env: P1_AUTH}\n")
    with pytest.raises(InventoryError, match="v3_user is required"):
        load_inventory(path)
    path.write_text("- {id: p-1, ip: 10.0.0.1, version: '3', v3_user: probe, v3_auth_key_env: P1_AUTH}\n")
    with pytest.raises(InventoryError, match="P1_AUTH is not set"):
        load_inventory(path)
    monkeypatch.setenv("P1_AUTH", "s3cret-key")
    (entry,) = load_inventory(path)
    target = entry.target()
    assert target.v3 is not None and target.v3.auth_key.get_secret_value() == "s3cret-key"
    assert "s3cret-key" not in repr(target)
