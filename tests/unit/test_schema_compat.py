"""Every schema change must be backward and forward compatible with every frozen version.

Compatibility is proven with data, through the Avro resolution rules as fastavro
implements them: records covering every union branch and every enum symbol are
written with one version and read with the other, in both directions.
"""

from __future__ import annotations

import copy
import io
import itertools
from typing import Any

import fastavro
import pytest

from continuum_events.schemas import history, load


def samples(schema: dict[str, Any]) -> list[Any]:
    """Values of ``schema`` that together touch every union branch and enum symbol."""
    named: dict[str, Any] = {}

    def full_name(s: dict, ns: str) -> str:
        name = s["name"]
        return name if "." in name else f"{s.get('namespace', ns)}.{name}".lstrip(".")

    def variants(s: Any, ns: str = "") -> list[Any]:
        if isinstance(s, str):
            if s in named or f"{ns}.{s}" in named:
                return variants(named.get(s) or named[f"{ns}.{s}"], ns)
            return [
                {
                    "null": None,
                    "boolean": True,
                    "int": 7,
                    "long": 2**40,
                    "float": 1.5,
                    "double": 2.5,
                    "string": "s",
                    "bytes": b"b",
                }[s]
            ]
        if isinstance(s, list):
            out = []
            for branch in s:
                name = full_name(branch, ns) if isinstance(branch, dict) and "name" in branch else None
                vals = variants(branch, ns)
                out += [(name, v) for v in vals] if name and sum(isinstance(b, dict) for b in s) > 1 else vals
            return out
        kind = s["type"]
        if s.get("logicalType") == "uuid":
            return ["0b7f4a52-33a4-4f7e-9a0e-2a3f8e3a9c11"]
        if kind == "record":
            name = full_name(s, ns)
            named[name] = s
            ns = name.rpartition(".")[0]
            per_field = [variants(f["type"], ns) for f in s["fields"]]
            width = max(len(v) for v in per_field)
            return [
                {f["name"]: vals[i % len(vals)] for f, vals in zip(s["fields"], per_field, strict=False)}
                for i in range(width)
            ]
        if kind == "enum":
            named[full_name(s, ns)] = s
            return list(s["symbols"])
        if kind == "array":
            return [[v] for v in variants(s["items"], ns)]
        if kind == "map":
            return [{"k": v} for v in variants(s["values"], ns)]
        return variants(kind, ns)

    return variants(schema)


def resolves(writer: dict, reader: dict) -> None:
    """Raise if data written with ``writer`` cannot be read with ``reader``."""
    parsed_w, parsed_r = fastavro.parse_schema(copy.deepcopy(writer)), fastavro.parse_schema(copy.deepcopy(reader))
    for record in samples(copy.deepcopy(writer)):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, parsed_w, record)
        out.seek(0)
        fastavro.schemaless_reader(out, parsed_w, parsed_r)


VERSIONS = history("event")


def test_history_is_not_empty() -> None:
    assert VERSIONS, "schemas/history/ must keep every released version of event.avsc"


@pytest.mark.parametrize(("name", "old"), VERSIONS, ids=[n for n, _ in VERSIONS])
def test_current_schema_reads_every_old_version(name: str, old: dict) -> None:
    resolves(writer=old, reader=load("event"))


@pytest.mark.parametrize(("name", "old"), VERSIONS, ids=[n for n, _ in VERSIONS])
def test_every_old_version_reads_the_current_schema(name: str, old: dict) -> None:
    resolves(writer=load("event"), reader=old)


def test_frozen_versions_are_mutually_compatible() -> None:
    for (_, a), (_, b) in itertools.combinations(VERSIONS, 2):
        resolves(a, b)
        resolves(b, a)


def test_the_current_schema_is_frozen_as_the_latest_version() -> None:
    latest_name, latest = VERSIONS[-1]
    assert latest == load("event"), (
        f"schemas/event.avsc changed but is not frozen: copy it to schemas/history/event.v{len(VERSIONS) + 1}.avsc "
        f"(the latest frozen version is {latest_name})"
    )


def test_the_check_catches_incompatible_changes() -> None:
    """Guard against a check that cannot fail."""
    current = load("event")
    required_added = copy.deepcopy(current)
    required_added["fields"].append({"name": "tenant", "type": "string"})
    with pytest.raises(Exception, match="tenant"):
        resolves(writer=current, reader=required_added)  # new reader, old data: backward break

    symbol_dropped = copy.deepcopy(current)
    enum = next(f for f in symbol_dropped["fields"] if f["name"] == "severity")["type"]
    enum["symbols"].remove("critical")
    del enum["default"]
    with pytest.raises(Exception):
        resolves(writer=current, reader=symbol_dropped)  # old reader, new data: forward break

    retyped = copy.deepcopy(current)
    next(f for f in retyped["fields"] if f["name"] == "source")["type"] = "int"
    with pytest.raises(Exception):
        resolves(writer=current, reader=retyped)


def test_adding_an_event_type_stays_forward_compatible() -> None:
    """The enum default is what lets an old reader meet a new event type."""
    current = load("event")
    newer = copy.deepcopy(current)
    next(f for f in newer["fields"] if f["name"] == "event_type")["type"]["symbols"].append("printer_unplugged")
    resolves(writer=newer, reader=current)
    resolves(writer=current, reader=newer)
