"""What the admin API does, over :mod:`continuum_events.operations` (the CLI's functions).

One :class:`AdminService` per process: it follows the config topic and the status topic
once (no re-reading per request), keeps the secret store, and runs replays and redrives
as background jobs with progress. Every method returns plain JSON-ready data and raises
:class:`Problem` for anything the caller did wrong::

    service = AdminService(settings, secrets_dir=Path(".state/secrets"))
    service.connect({"name": "splunk-main", "vendor": "splunk", "options": {...}, "secrets": {"token": "…"}})
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import threading
import time
import typing
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException
from pydantic import ValidationError

from continuum_events import operations
from continuum_events.codec import EventCodec
from continuum_events.config import ConfigStore
from continuum_events.connectors.registry import VENDORS
from continuum_events.integrations import IntegrationError, IntegrationSpec, SecretRef, connected
from continuum_events.netguard import UnsafeTarget
from continuum_events.rules import Rule, default_rule
from continuum_events.settings import KafkaSettings
from continuum_events.status import StatusBoard, integration_status
from continuum_events.topology import CATEGORIES

log = logging.getLogger(__name__)

#: What the page shows for each vendor: the field labels an operator knows.
LABELS = {
    "url": "URL",
    "token": "Token",
    "index": "Index",
    "api_key": "API key",
    "site": "Site",
    "host": "Host",
    "port": "Port",
    "routing_key": "Routing key",
    "license_key": "License key",
    "account_id": "Account ID",
    "password": "Password",
    "username": "User name",
    "job": "Job",
    "region": "Region",
}
#: Limits checked before anything is written: Kafka refuses a config record over ~1 MB
#: (after the topics and the secret file were made), and no real option or key is near these.
MAX_OPTION_CHARS = 2048
MAX_SECRET_CHARS = 16384
MAX_RECORD_BYTES = 64 * 1024
#: The options that say where an integration sends (and so where its secrets go).
ADDRESS_OPTIONS = ("url", "host", "port", "site", "region", "endpoint")
TITLES = {
    "splunk": "Splunk",
    "datadog": "Datadog",
    "elasticsearch": "Elastic",
    "syslog": "Syslog",
    "pushgateway": "Prometheus",
    "grafana": "Grafana",
    "newrelic": "New Relic",
    "nsca": "Nagios",
    "pagerduty": "PagerDuty",
    "opsgenie": "Opsgenie",
    "victorops": "VictorOps",
}


class Problem(Exception):
    """An RFC 9457 problem: status, title, detail, and field errors for a form."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        errors: list[dict[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.errors = status, title, detail, errors or []
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"type": "about:blank", "title": self.title, "status": self.status}
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        return body


def secret_problem(value: str) -> str | None:
    """What makes ``value`` unusable as a credential (never quoting it), or None. Vendors
    carry credentials in HTTP headers, which hold Latin-1 only."""
    if len(value) > MAX_SECRET_CHARS:
        return f"at most {MAX_SECRET_CHARS} characters"
    if not value.isprintable() or (not value.isascii() and any(ord(c) > 0xFF for c in value)):
        return "only printable Latin-1 characters (it is sent in an HTTP header)"
    return None


def record_problem(record: Any, field_name: str) -> None:
    """Refuse a config record Kafka would refuse, before anything is written."""
    size = len(json.dumps(record).encode())
    if size > MAX_RECORD_BYTES:
        raise Problem(
            422,
            "Too large",
            errors=[{"field": field_name, "message": f"at most {MAX_RECORD_BYTES // 1024} KiB in all"}],
        )


@dataclass
class Job:
    """A replay or redrive running in the background."""

    id: str
    kind: str
    integration: str
    state: str = "running"  # running, done, failed, stopped
    total: int | None = None
    done: int = 0
    result: dict[str, Any] | None = None
    error: str | None = None
    started: float = field(default_factory=time.time)
    stop: threading.Event = field(default_factory=threading.Event, repr=False)

    def as_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "stop"}


class AdminService:
    def __init__(
        self, settings: KafkaSettings, secrets_dir: Path, status_ttl_s: float = 1.5, resolver: Any = None
    ) -> None:
        self.settings, self.secrets_dir, self.status_ttl_s = settings, secrets_dir, status_ttl_s
        self.resolver = resolver  # tests name where hosts resolve; None: the system resolver
        self.store = ConfigStore(settings).start()
        self.board = StatusBoard(settings).start()
        self.jobs: dict[str, Job] = {}
        self._status: tuple[float, dict[str, Any]] = (0.0, {})
        self._lock = threading.Lock()

    def close(self) -> None:
        for job in self.jobs.values():
            job.stop.set()
        self.store.stop()
        self.board.stop()

    # -- reading -------------------------------------------------------------------------
    def config(self) -> Mapping[str, Any]:
        if not self.store.wait_ready(15):
            raise Problem(503, "Kafka unavailable", "the config topic could not be read")
        return self.store.values()

    def vendors(self) -> list[dict[str, Any]]:
        """Every vendor, its category and its form fields (secrets flagged, never valued)."""
        out = []
        for vendor, spec in VENDORS.items():
            hints = typing.get_type_hints(spec.config)
            fields = []
            for f in dataclasses.fields(spec.config):
                kind = str(hints[f.name])
                required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                choices = list(typing.get_args(hints[f.name])) if "Literal" in kind else None
                fields.append(
                    {
                        "name": f.name,
                        "label": LABELS.get(f.name, f.name.replace("_", " ").capitalize()),
                        "secret": "SecretStr" in kind,
                        "required": required,
                        "type": "boolean"
                        if kind.endswith("bool'>")
                        else "number"
                        if ("int" in kind or "float" in kind) and "Literal" not in kind
                        else "string",
                        "default": None if required or "SecretStr" in kind else f.default,
                        **({"choices": choices} if choices else {}),
                    }
                )
            out.append(
                {"vendor": vendor, "title": TITLES.get(vendor, vendor), "category": spec.category, "fields": fields}
            )
        return out

    def statuses(self) -> dict[str, Any]:
        """Live status per integration, computed at most every ``status_ttl_s``."""
        with self._lock:
            at, cached = self._status
            if time.monotonic() - at < self.status_ttl_s:
                return cached
            fresh = {s.name: s.as_json() for s in integration_status(self.settings, self.config(), self.board)}
            self._status = (time.monotonic(), fresh)
            return fresh

    def integrations(self) -> list[dict[str, Any]]:
        statuses = self.statuses()
        out = []
        for name, spec in sorted(connected(self.config()).items()):
            status = statuses.get(name) or {}
            out.append({**self._describe(spec), "status": status, "badge": self._badge(status)})
        return out

    def integration(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        status = self.statuses().get(name) or {}
        return {**self._describe(spec), "status": status, "badge": self._badge(status)}

    @staticmethod
    def _badge(status: Mapping[str, Any]) -> str:
        """What its connectors report on the status topic, not only that it is configured."""
        state = status.get("state")
        if state in ("unhealthy", "retrying", "invalid"):
            return "Failing"
        if state == "healthy":
            return "Connected"
        return "Disabled" if state == "disabled" else "Not running"  # no fresh report from any connector

    @staticmethod
    def _describe(spec: IntegrationSpec) -> dict[str, Any]:
        return {
            "name": spec.name,
            "vendor": spec.vendor,
            "category": spec.topic_category,
            "options": spec.options,
            "secrets": {k: {"set": True, "reference": ref.describe()} for k, ref in spec.secrets.items()},
            "filters": [f.model_dump(mode="json") for f in spec.filters],
            "start_from": spec.start_from,
            "allow_private_network": spec.allow_private_network,
            "allow_insecure_http": spec.allow_insecure_http,
        }

    def history(self, name: str) -> dict[str, Any]:
        """Its delivery rate and lag per minute over the last hour (the status topic)."""
        self._spec(name)
        return self.board.history(name)

    def _spec(self, name: str) -> IntegrationSpec:
        spec = connected(self.config()).get(name)
        if spec is None:
            raise Problem(404, "No such integration", f"no integration named {name!r} is connected")
        return spec

    # -- changing --------------------------------------------------------------------------
    def connect(self, body: Any, replace: bool = False) -> dict[str, Any]:
        """Validate the form, store raw secrets in the secret store (0600 files), apply the
        address rules, connect. The response describes references, never values.

        A name already connected is replaced only when asked (``replace``, or ``"replace":
        true`` in the body): otherwise 409, so a form never overwrites another integration
        by picking its name."""
        if not isinstance(body, dict):
            raise Problem(400, "Bad request", "expected a JSON object")
        body = dict(body)
        replace = body.pop("replace", False) is True or replace
        secrets = body.get("secrets") or {}
        if not isinstance(secrets, dict):
            raise Problem(422, "Invalid integration", errors=[{"field": "secrets", "message": "expected an object"}])
        name = body.get("name")
        existing = connected(self.config()).get(name) if isinstance(name, str) else None
        if existing is not None and not replace:
            raise Problem(
                409,
                "Already connected",
                f"an integration named {name!r} is connected ({existing.vendor}); "
                'send "replace": true to replace it, or choose another name',
                errors=[{"field": "name", "message": "already connected"}],
            )
        references, raw, problems = {}, {}, []
        for field_name, value in secrets.items():
            if isinstance(value, str) and value:
                problem = secret_problem(value)
                if problem:
                    problems.append({"field": f"secrets.{field_name}", "message": problem})
                raw[field_name] = value
                references[field_name] = {"file": "(secret store)"}
            elif value in ("", None):
                if existing is not None and field_name in existing.secrets:
                    references[field_name] = existing.secrets[field_name].model_dump(mode="json")  # keep it
            else:
                # A reference ({file: …} / {env: …}) would make this server read any file or
                # variable it can (another integration's secret, its own admin token) and send
                # it to an address the caller chose: only the operator's integrations file names them.
                problems.append(
                    {
                        "field": f"secrets.{field_name}",
                        "message": "give the secret's value (text); "
                        "file and environment references are taken only from the integrations file",
                    }
                )
        if "proxy" in body:
            # The way out is the operator's: a proxy chosen here could read every request.
            problems.append(
                {
                    "field": "proxy",
                    "message": "the egress proxy is set by the operator (the integrations "
                    "file, or CONTINUUM_EGRESS_HTTPS_PROXY), not through the admin API",
                }
            )
        elif existing is not None and existing.proxy is not None:
            body["proxy"] = existing.proxy.model_dump(mode="json")  # an edit keeps the operator's proxy
        options = body.get("options")
        for key, value in options.items() if isinstance(options, dict) else ():
            if isinstance(value, str) and len(value) > MAX_OPTION_CHARS:
                problems.append({"field": f"options.{key}", "message": f"at most {MAX_OPTION_CHARS} characters"})
        if problems:
            raise Problem(422, "Invalid integration", errors=problems)
        spec = self._validate({**body, "secrets": references})
        record_problem(spec.model_dump(mode="json"), "filters" if spec.filters else "integration")
        if existing is not None:
            self._check_kept_secrets(existing, spec, raw)
        try:
            spec.check_targets(self.resolver)
        except UnsafeTarget as exc:
            field_name, _, message = str(exc).partition(": ")
            raise Problem(422, "Address not allowed", errors=[{"field": field_name, "message": message}]) from None
        written: list[Path] = []
        try:
            for k, v in raw.items():
                written.append(self._store_secret(spec.name, k, v))
            spec = spec.model_copy(
                update={
                    "secrets": {
                        **spec.secrets,
                        **{k: SecretRef(file=str(path)) for k, path in zip(raw, written, strict=True)},
                    }
                }
            )
            done = operations.connect(self.settings, spec, self.config())
        except BaseException as exc:
            self._forget_secrets(written)  # the running integration keeps reading its old files
            if isinstance(exc, IntegrationError):
                raise Problem(422, "Cannot connect", str(exc)) from None
            if isinstance(exc, KafkaException):
                raise Problem(503, "Kafka refused the change", exc.args[0].str()) from None
            raise
        if existing is not None:  # the replaced values' files, no longer referenced
            self._forget_secrets(
                [
                    Path(ref.file)
                    for k, ref in existing.secrets.items()
                    if k in raw and ref.file and self._in_store(Path(ref.file))
                ]
            )
        self._wait_for(lambda: connected(self.store.values()).get(spec.name) == spec)
        self._status = (0.0, {})
        return {
            **self._describe(spec),
            "positioned": done.positioned,
            "default_rule_written": done.default_rule_written,
        }

    def edit(self, name: str, body: Any) -> dict[str, Any]:
        """Change a connected integration: the body is its whole new form (blank secrets keep
        the stored ones, unless its address changes)."""
        existing = self._spec(name)
        if not isinstance(body, dict):
            raise Problem(400, "Bad request", "expected a JSON object")
        if body.get("name", name) != name:
            raise Problem(
                422,
                "Invalid integration",
                errors=[{"field": "name", "message": "cannot be changed; connect a new integration instead"}],
            )
        if body.get("vendor", existing.vendor) != existing.vendor:
            raise Problem(
                422,
                "Invalid integration",
                errors=[{"field": "vendor", "message": "cannot be changed; connect a new integration instead"}],
            )
        secrets = body.get("secrets") if isinstance(body.get("secrets"), dict) else {}
        kept = {k: "" for k in existing.secrets if k not in secrets}  # not given: kept (a blank field)
        return self.connect(
            {**body, "name": name, "vendor": existing.vendor, "secrets": {**secrets, **kept}}, replace=True
        )

    @staticmethod
    def _check_kept_secrets(existing: IntegrationSpec, spec: IntegrationSpec, raw: Mapping[str, str]) -> None:
        """A stored secret is kept only for the address it was given for: pointing an
        integration elsewhere without retyping its secrets would send them there."""
        moved = [f"options.{k}" for k in ADDRESS_OPTIONS if spec.options.get(k) != existing.options.get(k)]
        if spec.vendor != existing.vendor:
            moved.append("vendor")
        kept = [k for k in spec.secrets if k not in raw]
        if moved and kept:
            raise Problem(
                422,
                "Secrets needed",
                f"{', '.join(moved)} changed: enter the secrets again",
                errors=[
                    {"field": f"secrets.{k}", "message": f"{', '.join(moved)} changed: enter it again"} for k in kept
                ],
            )

    def _validate(self, body: Mapping[str, Any]) -> IntegrationSpec:
        try:
            return IntegrationSpec.model_validate(body)
        except ValidationError as exc:
            errors = []
            for e in exc.errors():
                field_name = ".".join(str(p) for p in e["loc"]) or "integration"
                message = e["msg"].removeprefix("Value error, ")
                if not e["loc"] and message.startswith(("options.", "secrets.")):
                    field_name, _, message = message.partition(": ")
                errors.append({"field": field_name, "message": message})
            raise Problem(422, "Invalid integration", errors=errors) from None

    def _store_secret(self, name: str, field_name: str, value: str) -> Path:
        """A new file per value: the one an integration runs with is never overwritten before
        its replacement is connected."""
        folder = self.secrets_dir / name
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = folder / f"{field_name}-{uuid.uuid4().hex[:12]}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(value)
        path.chmod(0o600)
        return path.resolve()

    def _in_store(self, path: Path) -> bool:
        return path.resolve().is_relative_to(self.secrets_dir.resolve())

    def _forget_secrets(self, paths: list[Path]) -> None:
        for path in paths:
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # only when it held nothing else
            except OSError:
                pass

    def disconnect(self, name: str) -> None:
        self._spec(name)
        operations.disconnect(self.settings, name, self.config())
        self._wait_for(lambda: name not in connected(self.store.values()))
        self._status = (0.0, {})

    def test(self, name: str) -> dict[str, Any]:
        spec = self._spec(name)
        problems = []
        for field_name, ref in spec.secrets.items():
            try:
                problem = secret_problem(ref.resolve().get_secret_value())
            except IntegrationError:
                continue  # the vendor check reports it, naming the reference
            if problem:
                problems.append({"field": f"secrets.{field_name}", "message": problem})
        if problems:
            raise Problem(422, "Invalid secret", "a stored secret cannot be sent", errors=problems)
        try:
            return {"ok": True, "verdict": operations.test_connection(spec), "checked_at": time.time()}
        except operations.ConnectionFailed as exc:
            return {"ok": False, "kind": exc.kind, "verdict": str(exc), "checked_at": time.time()}

    def rules(self) -> list[dict[str, Any]]:
        """Every rule in force: the stored ones, and the built-in default routing of each
        category that has none of its own (what the router applies, marked ``built_in``)."""
        self.config()
        ruleset = self.store.ruleset()
        return [{**r.model_dump(mode="json"), "built_in": False} for r in ruleset.rules] + [
            {**default_rule(c).model_dump(mode="json"), "built_in": True} for c in CATEGORIES if c in ruleset.builtin
        ]

    def set_filters(self, name: str, filters: Any) -> dict[str, Any]:
        spec = self._spec(name)
        if not isinstance(filters, list):
            raise Problem(422, "Invalid filters", errors=[{"field": "filters", "message": "expected a list"}])
        updated = self._validate({**spec.model_dump(mode="json"), "filters": filters})
        record_problem(updated.model_dump(mode="json"), "filters")
        operations.connect(self.settings, updated, self.config())
        self._wait_for(lambda: connected(self.store.values()).get(name) == updated)
        return self._describe(updated)

    def set_rule(self, name: str, body: Any) -> dict[str, Any]:
        from continuum_events.config import write_rule

        if not isinstance(body, dict):
            raise Problem(400, "Bad request", "expected a JSON object")
        try:
            rule = Rule.model_validate({**body, "name": name})
        except ValidationError as exc:
            raise Problem(
                422,
                "Invalid rule",
                errors=[
                    {"field": ".".join(map(str, e["loc"])) or "rule", "message": e["msg"].removeprefix("Value error, ")}
                    for e in exc.errors()
                ],
            ) from None
        if rule.category not in CATEGORIES:
            raise Problem(422, "Invalid rule", errors=[{"field": "category", "message": "unknown category"}])
        stored = rule.model_dump(mode="json")
        record_problem(stored, "rule")
        write_rule(self.settings, rule)
        self._wait_for(lambda: self.store.values().get(rule.key) == stored)  # read-your-writes for the next call
        return stored

    def delete_rule(self, name: str) -> None:
        from continuum_events.config import delete_rule

        if f"rule/{name}" not in self.config():
            raise Problem(404, "No such rule", f"no rule named {name!r}")
        delete_rule(self.settings, name)
        self._wait_for(lambda: f"rule/{name}" not in self.store.values())

    def dead_letters(self, name: str) -> dict[str, Any]:
        self._spec(name)
        letters = operations.list_dead_letters(self.settings, name)
        groups = operations.summarize_dead_letters(letters, EventCodec(self.settings.schema_registry()))
        return {
            "waiting": sum(not d.redriven for d in letters),
            "retained": len(letters),
            "groups": [
                {
                    "reason": g.reason,
                    "stage": g.stage,
                    "count": g.count,
                    "waiting": g.waiting,
                    "event_types": dict(g.event_types),
                    "first_ms": g.first_ms,
                    "last_ms": g.last_ms,
                }
                for g in groups
            ],
        }

    # -- jobs ------------------------------------------------------------------------------
    def start_redrive(self, name: str, body: Any) -> Job:
        spec = self._spec(name)
        body = body if isinstance(body, dict) else {}
        reason, event_type = body.get("filter"), body.get("event_type")
        return self._start(
            "redrive",
            spec,
            lambda job, plan, advance: operations.redrive(
                self.settings,
                spec,
                job.stop,
                reason=reason,
                event_type=event_type,
                config=self.config(),
                on_plan=plan,
                on_progress=advance,
            ),
        )

    def start_replay(self, name: str, body: Any) -> Job:
        from continuum_events.history import parse_time

        spec = self._spec(name)
        if not isinstance(body, dict) or not body.get("from"):
            raise Problem(422, "Invalid replay", errors=[{"field": "from", "message": "a start time is required"}])
        try:
            start_ms = parse_time(str(body["from"]))
            end_ms = parse_time(str(body["to"])) if body.get("to") else None
        except ValueError as exc:
            raise Problem(422, "Invalid replay", errors=[{"field": "from/to", "message": str(exc)}]) from None
        if end_ms is not None and end_ms <= start_ms:
            raise Problem(422, "Invalid replay", errors=[{"field": "to", "message": "must be later than from"}])
        return self._start(
            "replay",
            spec,
            lambda job, plan, advance: operations.replay(
                self.settings, spec, start_ms, end_ms, job.stop, config=self.config(), on_plan=plan, on_progress=advance
            ),
        )

    def _start(self, kind: str, spec: IntegrationSpec, work: Any) -> Job:
        job = Job(uuid.uuid4().hex[:12], kind, spec.name)
        self.jobs[job.id] = job

        def plan(total: int) -> None:
            job.total = total

        def advance(n: int) -> None:
            job.done += n

        def run() -> None:
            try:
                result = work(job, plan, advance)
                job.result = dataclasses.asdict(result)
                job.state = "done" if result.completed else "stopped"
            except Exception as exc:
                log.exception("%s of %s failed", kind, spec.name)
                job.state, job.error = "failed", f"{type(exc).__name__}: {exc}"
            self._status = (0.0, {})

        threading.Thread(target=run, name=f"{kind}-{spec.name}", daemon=True).start()
        return job

    def job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id)
        if job is None:
            raise Problem(404, "No such job", f"no job {job_id!r}")
        return job

    def _wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.05)
