"""The printers a probe polls: a CSV or YAML file, validated on load, plus live changes.

CSV columns (header row required; ``tcp_ports`` separated by ``;``)::

    id,name,ip,model,location,department,community,snmp_port,version,tcp_ports
    p-0001,Finance-3F-01,10.20.3.11,HP M479,Finance-3F,Finance,public,161,2c,9100;631

YAML: a list of the same mappings, or ``{printers: [...]}``. SNMPv3 printers set
``version: "3"``, ``v3_user``, ``v3_auth_protocol`` (md5, sha, sha224…sha512),
``v3_priv_protocol`` (des, 3des, aes, aes192, aes256), ``v3_context``, and name the
environment variables holding their keys (``v3_auth_key_env``, ``v3_priv_key_env``):
keys are never written in the file. Errors name the file, the row (or list position)
and the field. Every process of a split fleet loads the same file
and keeps its share (:func:`shard_of`).
"""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from continuum_events.producers.snmp import AUTH_PROTOCOLS, PRIV_PROTOCOLS, V3, Target


class InventoryError(ValueError):
    """The inventory file cannot be used; the message says where and why."""


class PrinterEntry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, description="Continuum's printer id.")
    name: str | None = None
    ip: str = Field(min_length=1, description="Address or host name polled.")
    model: str | None = None
    location: str | None = None
    department: str | None = None
    community: str = "public"
    snmp_port: int = Field(161, ge=1, le=65535)
    version: Literal["1", "2c", "3"] = "2c"
    tcp_ports: tuple[int, ...] = (9100, 631)
    device_index: int = Field(1, ge=1)
    v3_user: str | None = None
    v3_auth_protocol: Literal[tuple(AUTH_PROTOCOLS)] = "sha"  # type: ignore[valid-type]
    v3_auth_key_env: str | None = Field(None, description="Environment variable holding the auth key.")
    v3_priv_protocol: Literal[tuple(PRIV_PROTOCOLS)] = "aes"  # type: ignore[valid-type]
    v3_priv_key_env: str | None = Field(None, description="Environment variable holding the privacy key.")
    v3_context: str = ""

    @model_validator(mode="after")
    def _v3_complete(self) -> PrinterEntry:
        if self.version == "3":
            if not self.v3_user:
                raise ValueError("v3_user is required with version 3")
            for name in ("v3_auth_key_env", "v3_priv_key_env"):
                variable = getattr(self, name)
                if variable and variable not in os.environ:
                    raise ValueError(f"{name}: environment variable {variable} is not set")
        return self

    @field_validator("tcp_ports", mode="before")
    @classmethod
    def _ports(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(int(p) for p in value.replace(",", ";").split(";") if p.strip())
        return value

    def target(self) -> Target:
        v3 = None
        if self.version == "3":

            def key(name: str | None) -> SecretStr | None:
                return SecretStr(os.environ[name]) if name else None

            v3 = V3(
                self.v3_user or "",
                self.v3_auth_protocol,
                key(self.v3_auth_key_env),
                self.v3_priv_protocol,
                key(self.v3_priv_key_env),
                self.v3_context,
            )
        return Target(self.ip, self.snmp_port, self.community, self.version, self.tcp_ports, self.device_index, v3)

    def event_fields(self) -> dict[str, Any]:
        """What every probe event says about the printer (Continuum's health-check fields)."""
        fields = {
            "printer_id": self.id,
            "printer_name": self.name,
            "printer_ip": self.ip,
            "printer_model": self.model,
            "printer_location": self.location,
            "printer_department": self.department,
        }
        return {k: v for k, v in fields.items() if v is not None}


def _rows(path: Path) -> Iterable[tuple[str, Mapping[str, Any]]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() in (".yaml", ".yml"):
        data = yaml.safe_load(text) or []
        if isinstance(data, Mapping):
            data = data.get("printers", [])
        if not isinstance(data, list):
            raise InventoryError(f"{path}: expected a list of printers (or printers: [...])")
        for i, row in enumerate(data):
            if not isinstance(row, Mapping):
                raise InventoryError(f"{path}: printer #{i + 1} is not a mapping")
            yield f"printer #{i + 1}", row
        return
    reader = csv.DictReader(text.splitlines())
    for row in reader:
        # An empty cell means "the default", except tcp_ports: empty there means "no TCP check".
        cleaned = {
            k.strip(): v.strip()
            for k, v in row.items()
            if k and v is not None and (v.strip() != "" or k.strip() == "tcp_ports")
        }
        yield f"line {reader.line_num}", cleaned


def load_inventory(path: str | Path) -> list[PrinterEntry]:
    path = Path(path)
    if not path.exists():
        raise InventoryError(f"inventory {path} does not exist")
    printers, seen = [], {}
    for where, row in _rows(path):
        try:
            entry = PrinterEntry.model_validate(row)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'row'}: {e['msg']}" for e in exc.errors())
            raise InventoryError(f"{path} {where}: {problems}") from None
        if entry.id in seen:
            raise InventoryError(f"{path} {where}: printer id {entry.id!r} already defined at {seen[entry.id]}")
        seen[entry.id] = where
        printers.append(entry)
    return printers


def shard_of(printer_id: str, shards: int) -> int:
    """Which of ``shards`` probe processes polls a printer (stable across restarts)."""
    return zlib.crc32(printer_id.encode()) % shards


def from_added_event(payload: Mapping[str, Any], defaults: Mapping[str, Any]) -> PrinterEntry | None:
    """An inventory entry from a printer.added payload (SNMP settings from the probe's defaults)."""
    if not payload.get("printer_ip"):
        return None
    return PrinterEntry.model_validate(
        {
            **defaults,
            "id": payload["printer_id"],
            "name": payload.get("printer_name"),
            "ip": payload["printer_ip"],
            "model": payload.get("printer_model"),
            "location": payload.get("printer_location"),
            "department": payload.get("printer_department"),
        }
    )
