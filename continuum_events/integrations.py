"""Integrations are configured, not coded: one YAML file, validated, written to the config topic.

A file lists integrations — vendor, category, options, credentials *by reference*
(an environment variable or a file, resolved only by the process that delivers),
filters and transforms, and where a new one starts reading::

    integrations:
      - name: splunk-prod
        vendor: splunk
        options: {url: "https://splunk.example.com:8088", index: printers}
        secrets: {token: {env: SPLUNK_HEC_TOKEN}}
        filters:
          - {event_types: ["printer.*"], min_severity: warning, mask: [printer_ip]}
        start_from: earliest          # or latest (the default): only events from now on

:func:`load_integrations` reports every problem with its line and field
(``integrations.yaml line 7, splunk-prod.options.url: ...``). :func:`connect` writes an
integration to ``continuum-events.config`` as ``integration/<name>`` (references only,
never a secret value), its filters as ``rule/<name>.filter.<i>``, sets its category's
default routing if the category has none, and places a new integration's consumer group
at the start it asked for. :func:`disconnect` removes all of that and leaves the group
and its dead letters in place (a reconnect resumes where it stopped).
"""

from __future__ import annotations

import dataclasses
import os
import re
import stat
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from continuum_events.rules import Rule, listify_where
from continuum_events.topology import CATEGORIES

INTEGRATION_PREFIX = "integration/"
NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,62}$"


class IntegrationError(ValueError):
    """A configuration problem, with a message fit for the operator (names line and field)."""


class SecretRef(BaseModel):
    """Where a secret lives: an environment variable or a file. Never the value itself."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    env: str | None = Field(None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Environment variable name.")
    file: str | None = Field(None, description="Path of a file holding the secret (trailing newline ignored).")

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        if (self.env is None) == (self.file is None):
            raise ValueError("give exactly one of env: VARIABLE or file: /path")
        return self

    def describe(self) -> str:
        return f"env {self.env}" if self.env else f"file {self.file}"

    def resolve(self, environ: Mapping[str, str] = os.environ) -> SecretStr:
        """The secret's value; an error names the reference, never a value."""
        if self.env is not None:
            if not environ.get(self.env):
                raise IntegrationError(f"environment variable {self.env} is not set")
            return SecretStr(environ[self.env])
        path = Path(typing.cast(str, self.file))
        try:
            mode = path.stat().st_mode
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise IntegrationError(f"cannot read secret file {path}: {exc.strerror}") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise IntegrationError(f"secret file {path} is readable by others (chmod 600 it)")
        if not text.strip():
            raise IntegrationError(f"secret file {path} is empty")
        return SecretStr(text.rstrip("\r\n"))


class ProxySpec(BaseModel):
    """An integration's own egress proxy (see :mod:`continuum_events.egress`), from the
    operator's integrations file only. ``https_proxy: null`` sends it direct whatever the
    global setting."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    https_proxy: str | None
    no_proxy: tuple[str, ...] = ()
    username: str | None = None
    password: SecretRef | None = None
    ca_bundle: str | None = None

    @field_validator("no_proxy", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        from continuum_events.egress import split_no_proxy

        return split_no_proxy(value) if isinstance(value, str) else value

    @field_validator("https_proxy")
    @classmethod
    def _usable(cls, value: str | None) -> str | None:
        from continuum_events.egress import EgressProxy

        if value:
            EgressProxy(value)  # a ProxyError is a ValueError: a validation message
        return value or None

    def resolve(self, environ: Mapping[str, str] = os.environ) -> Any:
        """The :class:`~continuum_events.egress.EgressProxy` (its ``url`` None: direct), or None."""
        from continuum_events.egress import EgressProxy

        if self.https_proxy is None and self.ca_bundle is None:
            return None
        password = self.password.resolve(environ) if self.password is not None else None
        return EgressProxy(self.https_proxy, self.no_proxy, self.username, password, self.ca_bundle)


class Filter(BaseModel):
    """One of an integration's filters: which events of its category it takes, and how
    they are reshaped (``drop``/``mask``). The first matching filter applies."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_types: tuple[str, ...] = ("*",)
    min_severity: Literal["info", "warning", "error", "critical"] = "info"
    where: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    drop: tuple[str, ...] = ()
    mask: tuple[str, ...] = ()

    @field_validator("where", mode="before")
    @classmethod
    def _listify(cls, where: Any) -> Any:
        return listify_where(where)

    @model_validator(mode="after")
    def _a_valid_rule(self) -> Filter:
        # The rule engine's own checks (event types exist, fields exist, required fields kept).
        try:
            Rule(name="check", category="logging", **self.model_dump())
        except ValidationError as exc:
            raise ValueError("; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
        return self


class IntegrationSpec(BaseModel):
    """One integration as stored in the config topic (secrets as references only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(description="Its consumer group, dead-letter topic and metrics label.")
    vendor: str
    category: str | None = Field(None, description="Category topic it delivers; default: the vendor's.")
    options: dict[str, str | int | float | bool] = Field(default_factory=dict)
    secrets: dict[str, SecretRef] = Field(default_factory=dict)
    filters: tuple[Filter, ...] = ()
    start_from: Literal["latest", "earliest"] = "latest"
    enabled: bool = True
    #: The vendor address may be private (an on-premises receiver): an explicit choice.
    allow_private_network: bool = False
    #: The vendor address may be plain http: an explicit choice.
    allow_insecure_http: bool = False
    #: Each vendor request ends within this many seconds, answered or not (default: the vendor's).
    timeout_s: float | None = Field(None, gt=0, le=300)
    #: Its own egress proxy (operator's file only); None: the global one, if any.
    proxy: ProxySpec | None = None

    @field_validator("name")
    @classmethod
    def _usable_name(cls, name: str) -> str:
        if not re.match(NAME_PATTERN, name):
            raise ValueError(
                f"{name!r} cannot name an integration: use lower-case letters, digits, '.', '_' "
                "and '-' (it names a consumer group and topics), at most 63 characters"
            )
        return name

    @field_validator("vendor")
    @classmethod
    def _known_vendor(cls, vendor: str) -> str:
        from continuum_events.connectors.registry import VENDORS

        if vendor not in VENDORS:
            raise ValueError(f"unknown vendor {vendor!r}; one of {', '.join(sorted(VENDORS))}")
        return vendor

    @field_validator("category")
    @classmethod
    def _known_category(cls, category: str | None) -> str | None:
        if category is not None and category not in CATEGORIES:
            raise ValueError(f"unknown category {category!r}; one of {', '.join(CATEGORIES)}")
        return category

    @model_validator(mode="after")
    def _vendor_fields(self) -> IntegrationSpec:
        from continuum_events.connectors.registry import VENDORS

        config = VENDORS[self.vendor].config
        hints = typing.get_type_hints(config)
        fields = {f.name: f for f in dataclasses.fields(config)}
        for name in self.options:
            if name not in fields:
                raise ValueError(
                    f"options.{name}: {self.vendor} has no option {name!r}; options: "
                    f"{', '.join(n for n in fields if 'SecretStr' not in str(hints[n]))}"
                )
            if "SecretStr" in str(hints[name]):
                raise ValueError(f"options.{name}: a secret; give it under secrets as {{env: VAR}} or {{file: PATH}}")
        for name in self.secrets:
            if name not in fields or "SecretStr" not in str(hints[name]):
                raise ValueError(f"secrets.{name}: not a secret field of {self.vendor}")
        missing = [
            n
            for n, f in fields.items()
            if n not in self.options
            and n not in self.secrets
            and f.default is dataclasses.MISSING
            and f.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"{self.vendor} needs {', '.join(missing)}")
        check = getattr(config, "check_options", None)  # a vendor's own rules for its options
        if check is not None:
            check(self.options)
        return self

    @property
    def key(self) -> str:
        return INTEGRATION_PREFIX + self.name

    @property
    def topic_category(self) -> str:
        from continuum_events.connectors.registry import VENDORS

        return self.category or VENDORS[self.vendor].category

    def rules(self) -> list[Rule]:
        """The filters as rules of the shared engine (``integration`` set, in file order)."""
        return [
            Rule(
                name=f"{self.name}.filter.{i}",
                category=self.topic_category,
                integration=self.name,
                priority=i,
                **f.model_dump(),
            )
            for i, f in enumerate(self.filters)
        ]

    def check_targets(self, resolver: Any = None) -> None:
        """Apply the server-side request forgery rules to the addresses this integration
        would send to (:mod:`continuum_events.netguard`); raises ``UnsafeTarget`` naming
        the option."""
        from continuum_events import netguard

        kwargs = {"resolver": resolver} if resolver else {}
        for name, value in self.options.items():
            try:
                if name == "url" and isinstance(value, str):
                    netguard.check_url(
                        value, allow_http=self.allow_insecure_http, allow_private=self.allow_private_network, **kwargs
                    )
                elif name == "host" and isinstance(value, str):
                    netguard.check_host(value, allow_private=self.allow_private_network, **kwargs)
            except netguard.UnsafeTarget as exc:
                raise netguard.UnsafeTarget(f"options.{name}: {exc}") from None

    def build_sink(self, environ: Mapping[str, str] = os.environ) -> Any:
        """The vendor sink, with secrets resolved here (the delivering process)."""
        from continuum_events.connectors.registry import make_sink

        values: dict[str, Any] = dict(self.options)
        for field_name, ref in self.secrets.items():
            try:
                values[field_name] = ref.resolve(environ)
            except IntegrationError as exc:
                raise IntegrationError(f"{self.name}: secret {field_name}: {exc}") from None
        from continuum_events.egress import ProxyError, global_proxy
        from continuum_events.netguard import TargetPolicy

        policy = TargetPolicy(allow_private=self.allow_private_network, allow_http=self.allow_insecure_http)
        try:
            proxy = self.proxy.resolve(environ) if self.proxy is not None else global_proxy(environ)
        except IntegrationError as exc:
            raise IntegrationError(f"{self.name}: proxy password: {exc}") from None
        except ProxyError as exc:
            raise IntegrationError(f"{self.name}: proxy: {exc}") from None
        try:
            return make_sink(self.vendor, values, policy=policy, timeout_s=self.timeout_s, proxy=proxy)
        except (TypeError, ValueError) as exc:
            raise IntegrationError(f"{self.name}: {exc}") from None


# -- the file -------------------------------------------------------------------------
def load_integrations(path: str | Path) -> list[IntegrationSpec]:
    """Every integration of the file, validated; raises :class:`IntegrationError` naming
    the file, line and field of the first problem of each bad entry."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise IntegrationError(f"{path} does not exist") from None
    except OSError as exc:
        raise IntegrationError(f"cannot read {path}: {exc.strerror}") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise IntegrationError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return []
    entries = data.get("integrations") if isinstance(data, Mapping) else data
    entries_node = _child(root, "integrations") if isinstance(data, Mapping) else root
    if not isinstance(entries, list):
        raise IntegrationError(f"{path}: expected `integrations:` with a list of integrations")
    specs, problems, seen = [], [], {}
    for i, entry in enumerate(entries):
        node = _child(entries_node, i)
        label = entry.get("name", f"#{i + 1}") if isinstance(entry, Mapping) else f"#{i + 1}"
        try:
            spec = IntegrationSpec.model_validate(entry)
        except ValidationError as exc:
            for error in exc.errors():
                loc = list(error["loc"])
                line = _line(node, loc) or _line(node, [])
                field = ".".join(str(p) for p in loc) or "entry"
                message = error["msg"].removeprefix("Value error, ")
                if not loc and message.startswith(("options.", "secrets.")):
                    field, _, message = message.partition(": ")
                    line = _line(node, field.split(".")) or line
                problems.append(f"{path} line {line}, {label}.{field}: {message}")
            continue
        if spec.name in seen:
            problems.append(f"{path} line {_line(node, [])}, {spec.name}: name already used at line {seen[spec.name]}")
            continue
        seen[spec.name] = _line(node, [])
        specs.append(spec)
    if problems:
        raise IntegrationError("\n".join(problems))
    return specs


def _child(node: yaml.Node | None, key: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if k.value == str(key):
                return v
    if isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
        return node.value[key]
    return None


def _line(node: yaml.Node | None, loc: Sequence[Any]) -> int | None:
    """The line of the deepest node along ``loc`` that exists (1-based)."""
    line = node.start_mark.line + 1 if node is not None else None
    for part in loc:
        node = _child(node, part)
        if node is None:
            break
        line = node.start_mark.line + 1
    return line


# -- the config topic -----------------------------------------------------------------
def connected(values: Mapping[str, Any]) -> dict[str, IntegrationSpec]:
    """The integrations in a config snapshot; an entry that no longer validates is skipped
    (and reported by :func:`invalid_integrations`)."""
    found = {}
    for key, value in values.items():
        if key.startswith(INTEGRATION_PREFIX):
            try:
                spec = IntegrationSpec.model_validate(value)
            except ValidationError:
                continue
            found[spec.name] = spec
    return found


def invalid_integrations(values: Mapping[str, Any]) -> dict[str, str]:
    bad = {}
    for key, value in values.items():
        if key.startswith(INTEGRATION_PREFIX):
            try:
                IntegrationSpec.model_validate(value)
            except ValidationError as exc:
                bad[key.removeprefix(INTEGRATION_PREFIX)] = "; ".join(e["msg"] for e in exc.errors())
    return bad
