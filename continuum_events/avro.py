"""A validating Avro binary encoder compiled from a schema.

fastavro is the reference implementation we decode with and test against, but its
generic writer spends ~9 µs per event envelope; the producer's budget for the whole
``dispatch_event`` call is 10 µs. :func:`compile_encoder` walks the schema once and
builds a tree of small closures, so encoding is a chain of direct calls with no
schema interpretation left at run time. The same walk type-checks every value, so
validation and encoding are a single pass and a bad value is reported by its path::

    encode = compile_encoder(fastavro.parse_schema(schema))
    encode({"printer_id": "p-1", ...})            # -> bytes
    encode({"printer_id": 7})                     # SchemaViolation: printer_id: expected string, got int (7)

Supported: the types the Continuum schemas use — null, boolean, int, long, float,
double, string, bytes, enum, array, map, record, unions, and the logical types
``uuid`` and ``timestamp-micros``. A union of several records takes a
``(record_name, value)`` tuple, as fastavro's writer does, so the branch is never
guessed.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

Encoder = Callable[[Any, bytearray], None]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INT_MIN, _INT_MAX = -(2**31), 2**31 - 1
_LONG_MIN, _LONG_MAX = -(2**63), 2**63 - 1
_pack_double = struct.Struct("<d").pack
_pack_float = struct.Struct("<f").pack


class SchemaViolation(ValueError):
    """A value does not fit the schema; ``path`` names the offending field."""

    def __init__(self, path: str, problem: str) -> None:
        self.path = path or "<record>"
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def _varint(n: int) -> bytes:
    """Zig-zag encode a long as Avro does."""
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


# Lengths and small ints are almost always below 64: look them up.
_SMALL = [_varint(i) for i in range(-64, 64)]


def _zigzag(n: int) -> bytes:
    return _SMALL[n + 64] if -64 <= n < 64 else _varint(n)


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} ({text[:40]}{'…' if len(text) > 40 else ''})"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def compile_encoder(schema: Any) -> Callable[..., bytes]:
    """Return ``encode(value, prefix=b"") -> bytes`` for a schema parsed by
    ``fastavro.parse_schema``; ``prefix`` (a framing header) is written first."""
    root = _Compiler().compile(schema, "")

    def encode(value: Any, prefix: bytes = b"") -> bytes:
        out = bytearray(prefix)
        root(value, out)
        return bytes(out)

    return encode


class _Compiler:
    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def compile(self, schema: Any, path: str) -> Encoder:
        """Paths are baked in here, so the hot path never formats a string."""
        if isinstance(schema, str):
            if schema in self.named:
                return self.compile(self.named[schema], path)
            return _primitive(schema, path)
        if isinstance(schema, list):
            return self._union(schema, path)
        kind = schema["type"]
        if schema.get("logicalType") == "timestamp-micros" and kind == "long":
            return _timestamp_micros(path)
        if kind in ("record", "error"):
            self.named[schema["name"]] = schema
            return self._record(schema, path)
        if kind == "enum":
            self.named[schema["name"]] = schema
            return _enum(schema, path)
        if kind == "array":
            return _array(self.compile(schema["items"], f"{path}[]"), path)
        if kind == "map":
            return _map(self.compile(schema["values"], f"{path}[]"), path)
        if kind == "fixed":
            raise NotImplementedError("fixed is not used by the Continuum schemas")
        return self.compile(kind, path)

    def _record(self, schema: Mapping[str, Any], path: str) -> Encoder:
        """Generate one flat function per record: no per-field loop or dispatch at run time.

        An optional field (``["null", T]``, default null) becomes three inline lines;
        any other field with a default has its default encoded once, here.
        """
        record_name = schema["name"].rsplit(".", 1)[-1]
        names = frozenset(f["name"] for f in schema["fields"])
        scope: dict[str, Any] = {
            "Mapping": Mapping,
            "ABSENT": _ABSENT,
            "names": names,
            "bad_record": _bad_record(path, record_name, names),
        }
        body = [
            "def record(value, out):",
            "    if type(value) is not dict and not isinstance(value, Mapping) or not value.keys() <= names:",
            "        bad_record(value)",
            "    get = value.get",
        ]
        scope.update(SMALL=_SMALL, varint=_varint)
        for i, f in enumerate(schema["fields"]):
            field_path = _join(path, f["name"])
            inner = _optional_branch(f)
            if inner is not None:
                scope[f"inner{i}"] = self.compile(inner, field_path)
                body += [f"    v = get({f['name']!r})", "    if v is None: out.append(0)"]
                fast = _fast_path(inner, i, scope)
                if fast:
                    body += [f"    elif {fast[0]}:", "        out.append(2)", *(f"        {line}" for line in fast[1])]
                body.append(f"    else: out.append(2); inner{i}(v, out)")
                continue
            scope[f"enc{i}"] = self.compile(f["type"], field_path)
            body.append(f"    v = get({f['name']!r}, ABSENT)")
            fast = _fast_path(f["type"], i, scope)
            if fast:
                body += [f"    if {fast[0]}:", *(f"        {line}" for line in fast[1])]
                body.append("    elif v is ABSENT:")
            else:
                body.append("    if v is ABSENT:")
            if "default" in f:
                missing = bytearray()
                scope[f"enc{i}"](_default_value(f["type"], f["default"]), missing)
                scope[f"missing{i}"] = bytes(missing)
                body.append(f"        out += missing{i}")
            else:
                scope[f"required{i}"] = functools.partial(SchemaViolation, field_path, "required field is missing")
                body.append(f"        raise required{i}()")
            body.append(f"    else: enc{i}(v, out)")
        exec(compile("\n".join(body), f"<avro encoder for {record_name}>", "exec"), scope)
        record: Encoder = scope["record"]
        return record

    def _union(self, branches: list[Any], path: str) -> Encoder:
        encoders = [self.compile(b, path) for b in branches]
        types = [b if isinstance(b, str) else b["type"] for b in branches]
        names = [b if isinstance(b, str) else b.get("name", b["type"]) for b in branches]
        if len(branches) == 2 and "null" in types:
            # The optional field, ["null", T]: by far the commonest union.
            null_index = types.index("null")
            other = encoders[1 - null_index]
            null_tag, value_tag = _zigzag(null_index), _zigzag(1 - null_index)

            def optional(value: Any, out: bytearray) -> None:
                if value is None:
                    out += null_tag
                else:
                    out += value_tag
                    other(value, out)

            return optional

        by_name = {}
        for index, (name, encoder) in enumerate(zip(names, encoders, strict=False)):
            by_name[name] = (_zigzag(index), encoder)
            by_name[name.rsplit(".", 1)[-1]] = (_zigzag(index), encoder)
        choices = ", ".join(n.rsplit(".", 1)[-1] for n in names)

        def tagged(value: Any, out: bytearray) -> None:
            if type(value) is not tuple or len(value) != 2 or value[0] not in by_name:
                raise SchemaViolation(path, f"expected a (branch, value) pair with branch one of {choices}")
            tag, encoder = by_name[value[0]]
            out += tag
            encoder(value[1], out)

        return tagged


_ABSENT = object()


def _fast_path(schema: Any, i: int, scope: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Inline code for the common, valid case of a field; anything else falls back to the
    field's compiled encoder, which validates and explains."""
    kind = schema if isinstance(schema, str) else schema.get("type") if isinstance(schema, dict) else None
    if kind == "string":
        return "type(v) is str", [
            "b = v.encode()",
            "n = len(b)",
            "out += SMALL[n + 64] if n < 64 else varint(n)",
            "out += b",
        ]
    if kind in ("int", "long") and not (isinstance(schema, dict) and "logicalType" in schema):
        return "type(v) is int and -64 <= v < 64", ["out += SMALL[v + 64]"]
    if kind == "enum":
        scope[f"tags{i}"] = {symbol: _zigzag(n) for n, symbol in enumerate(schema["symbols"])}
        return f"type(v) is str and v in tags{i}", [f"out += tags{i}[v]"]
    return None


def _optional_branch(field: Mapping[str, Any]) -> Any:
    """T for a field typed ``["null", T]`` whose default is null, else None."""
    kind = field["type"]
    if isinstance(kind, list) and len(kind) == 2 and kind[0] == "null" and field.get("default", 0) is None:
        return kind[1]
    return None


def _bad_record(path: str, record_name: str, names: frozenset[str]) -> Callable[[Any], None]:
    def bad_record(value: Any) -> None:
        if not isinstance(value, Mapping):
            raise SchemaViolation(path, f"expected a {record_name} mapping, got {_describe(value)}")
        unknown = sorted(str(k) for k in set(value) - names)
        raise SchemaViolation(
            _join(path, unknown[0]), f"unknown field (a {record_name} has: {', '.join(sorted(names))})"
        )

    return bad_record


def _default_value(schema: Any, default: Any) -> Any:
    """A union field's default belongs to its first branch; tag it if that is a record."""
    if isinstance(schema, list) and isinstance(schema[0], dict) and schema[0].get("type") == "record":
        return (schema[0]["name"], default)
    return default


def _primitive(name: str, path: str) -> Encoder:
    try:
        return _PRIMITIVES[name](path)
    except KeyError:
        raise NotImplementedError(f"unsupported Avro type {name!r}") from None


def _null(path: str) -> Encoder:
    def null(value: Any, out: bytearray) -> None:
        if value is not None:
            raise SchemaViolation(path, f"expected null, got {_describe(value)}")

    return null


def _boolean(path: str) -> Encoder:
    def boolean(value: Any, out: bytearray) -> None:
        if value is True:
            out.append(1)
        elif value is False:
            out.append(0)
        else:
            raise SchemaViolation(path, f"expected boolean, got {_describe(value)}")

    return boolean


def _integer(low: int, high: int, name: str) -> Callable[[str], Encoder]:
    def build(path: str) -> Encoder:
        def integer(value: Any, out: bytearray) -> None:
            # bool is an int subclass; True is not a valid count.
            if type(value) is not int or not low <= value <= high:
                raise SchemaViolation(path, f"expected {name}, got {_describe(value)}")
            out += _SMALL[value + 64] if -64 <= value < 64 else _varint(value)

        return integer

    return build


def _real(pack: Callable[[float], bytes], name: str) -> Callable[[str], Encoder]:
    def build(path: str) -> Encoder:
        def real(value: Any, out: bytearray) -> None:
            if type(value) is not float and type(value) is not int:
                raise SchemaViolation(path, f"expected {name}, got {_describe(value)}")
            out += pack(value)

        return real

    return build


def _string(path: str) -> Encoder:
    def string(value: Any, out: bytearray) -> None:
        if type(value) is not str:
            raise SchemaViolation(path, f"expected string, got {_describe(value)}")
        data = value.encode()
        n = len(data)
        out += _SMALL[n + 64] if n < 64 else _varint(n)
        out += data

    return string


def _bytes(path: str) -> Encoder:
    def bytes_(value: Any, out: bytearray) -> None:
        if not isinstance(value, (bytes, bytearray)):
            raise SchemaViolation(path, f"expected bytes, got {_describe(value)}")
        out += _zigzag(len(value))
        out += value

    return bytes_


def _timestamp_micros(path: str) -> Encoder:
    long = _PRIMITIVES["long"](path)

    def timestamp(value: Any, out: bytearray) -> None:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise SchemaViolation(path, "naive datetime: give a timezone-aware (UTC) timestamp")
            delta = value - _EPOCH
            value = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
        long(value, out)

    return timestamp


_PRIMITIVES: dict[str, Callable[[str], Encoder]] = {
    "null": _null,
    "boolean": _boolean,
    "int": _integer(_INT_MIN, _INT_MAX, "int (32-bit)"),
    "long": _integer(_LONG_MIN, _LONG_MAX, "long (64-bit)"),
    "float": _real(_pack_float, "float"),
    "double": _real(_pack_double, "double"),
    "string": _string,
    "bytes": _bytes,
}


def _enum(schema: Mapping[str, Any], path: str) -> Encoder:
    tags = {symbol: _zigzag(i) for i, symbol in enumerate(schema["symbols"])}
    name = schema["name"].rsplit(".", 1)[-1]

    def enum(value: Any, out: bytearray) -> None:
        tag = tags.get(value)
        if tag is None:
            raise SchemaViolation(path, f"{value!r} is not a {name} (one of {', '.join(tags)})")
        out += tag

    return enum


def _array(items: Encoder, path: str) -> Encoder:
    def array(value: Any, out: bytearray) -> None:
        if not isinstance(value, (list, tuple)):
            raise SchemaViolation(path, f"expected a list, got {_describe(value)}")
        if value:
            out += _zigzag(len(value))
            for item in value:
                items(item, out)
        out.append(0)

    return array


def _map(values: Encoder, path: str) -> Encoder:
    key = _string(f"{path} key")

    def map_(value: Any, out: bytearray) -> None:
        if not isinstance(value, Mapping):
            raise SchemaViolation(path, f"expected a mapping, got {_describe(value)}")
        if value:
            out += _zigzag(len(value))
            for k, item in value.items():
                key(k, out)
                values(item, out)
        out.append(0)

    return map_
