"""Avro schemas: the single source of truth for every record on the wire.

``event.avsc`` is the current event envelope; ``history/`` keeps every released
version, frozen, so readers can resolve old data and the compatibility test can
prove each change is backward and forward compatible.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Any


def load(name: str) -> dict[str, Any]:
    """Return the parsed JSON of ``schemas/<name>.avsc``."""
    return json.loads(files(__name__).joinpath(f"{name}.avsc").read_text())


def history(name: str) -> list[tuple[str, dict[str, Any]]]:
    """Every frozen version of schema ``name`` as (file name, schema), oldest first."""
    folder = files(__name__).joinpath("history")
    versions = sorted(
        (p for p in folder.iterdir() if p.name.startswith(f"{name}.v") and p.name.endswith(".avsc")),
        key=lambda p: int(p.name[len(name) + 2 : -len(".avsc")]),
    )
    return [(p.name, json.loads(p.read_text())) for p in versions]
