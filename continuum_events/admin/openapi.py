"""The admin API's OpenAPI 3.1 description (served at ``/api/openapi.json``)."""

from __future__ import annotations

from typing import Any

from continuum_events import __version__

_PROBLEM = {"$ref": "#/components/responses/Problem"}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "Integration name.",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _op(
    summary: str,
    responses: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {**responses, "4XX": _PROBLEM}}
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    if params:
        op["parameters"] = params
    return op


def openapi_document() -> dict[str, Any]:
    array = lambda item: {"type": "array", "items": item}  # noqa: E731
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "continuum-events admin",
            "version": __version__,
            "description": "Integrations of Continuum's event pipeline: connect, test, watch, replay, redrive. "
            "State-changing calls need JSON and the X-Requested-With: continuum-admin header.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/vendors": {"get": _op("Vendors and their form fields", {"200": _json(array(_ref("Vendor")), "ok")})},
            "/api/integrations": {
                "get": _op("Connected integrations with live status", {"200": _json(array(_ref("Integration")), "ok")}),
                "post": _op(
                    "Connect an integration (409 if the name is connected, unless replace is true)",
                    {"201": _json(_ref("Integration"), "connected")},
                    body=_ref("ConnectRequest"),
                ),
            },
            "/api/integrations/{name}": {
                "get": _op("One integration", {"200": _json(_ref("Integration"), "ok")}, params=[_NAME]),
                "put": _op(
                    "Edit an integration: its whole new form; blank secrets keep the stored ones unless "
                    "its address changes; name and vendor stay",
                    {"200": _json(_ref("Integration"), "changed")},
                    body=_ref("ConnectRequest"),
                    params=[_NAME],
                ),
                "delete": _op("Disconnect", {"204": {"description": "disconnected"}}, params=[_NAME]),
            },
            "/api/integrations/{name}/history": {
                "get": _op(
                    "Delivery rate (events/s) and lag per minute over the last hour; null where no connector reported",
                    {
                        "200": _json(
                            {
                                "type": "object",
                                "properties": {
                                    "step_s": {"type": "number"},
                                    "start": {"type": "number"},
                                    "rate": {"type": "array", "items": {"type": ["number", "null"]}},
                                    "lag": {"type": "array", "items": {"type": ["integer", "null"]}},
                                },
                            },
                            "ok",
                        )
                    },
                    params=[_NAME],
                ),
            },
            "/api/integrations/{name}/test": {
                "post": _op(
                    "Test the connection with the vendor's own check",
                    {"200": _json(_ref("Verdict"), "the verdict")},
                    params=[_NAME],
                ),
            },
            "/api/integrations/{name}/filters": {
                "put": _op(
                    "Replace the integration's filters",
                    {"200": _json(_ref("Integration"), "ok")},
                    body={"type": "object", "properties": {"filters": array(_ref("Filter"))}, "required": ["filters"]},
                    params=[_NAME],
                ),
            },
            "/api/integrations/{name}/dead-letters": {
                "get": _op("Dead letters grouped by reason", {"200": _json(_ref("DeadLetters"), "ok")}, params=[_NAME]),
            },
            "/api/integrations/{name}/dead-letters/redrive": {
                "post": _op(
                    "Send waiting dead letters back through delivery (once each)",
                    {"202": _json(_ref("Job"), "started")},
                    body={
                        "type": "object",
                        "properties": {"filter": {"type": "string"}, "event_type": {"type": "string"}},
                    },
                    params=[_NAME],
                ),
            },
            "/api/integrations/{name}/replay": {
                "post": _op(
                    "Re-deliver a time window to this integration only",
                    {"202": _json(_ref("Job"), "started")},
                    body={
                        "type": "object",
                        "required": ["from"],
                        "properties": {
                            "from": {"type": "string", "examples": ["6h", "2026-11-27T08:00Z"]},
                            "to": {"type": "string"},
                        },
                    },
                    params=[_NAME],
                ),
            },
            "/api/jobs/{id}": {
                "get": _op(
                    "A replay or redrive's progress",
                    {"200": _json(_ref("Job"), "ok")},
                    params=[{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                ),
            },
            "/api/rules": {
                "get": _op(
                    "Routing rules and filters, with each category's built-in default when it has "
                    "no routing rule of its own (built_in: true)",
                    {"200": _json(array({"type": "object", "properties": {"built_in": {"type": "boolean"}}}), "ok")},
                )
            },
            "/api/rules/{name}": {
                "put": _op(
                    "Create or replace a routing rule",
                    {"200": _json({"type": "object"}, "ok")},
                    body={"type": "object"},
                    params=[_NAME],
                ),
                "delete": _op("Delete a routing rule", {"204": {"description": "deleted"}}, params=[_NAME]),
            },
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Problem": {
                    "description": "A problem document (RFC 9457)",
                    "content": {"application/problem+json": {"schema": _ref("Problem")}},
                }
            },
            "schemas": {
                "Problem": {
                    "type": "object",
                    "required": ["title", "status"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": array(
                            {
                                "type": "object",
                                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
                            }
                        ),
                    },
                },
                "Vendor": {
                    "type": "object",
                    "properties": {
                        "vendor": {"type": "string"},
                        "title": {"type": "string"},
                        "category": {"type": "string"},
                        "fields": array(
                            {
                                "type": "object",
                                "properties": {
                                    "name": {"type": "string"},
                                    "label": {"type": "string"},
                                    "secret": {"type": "boolean"},
                                    "required": {"type": "boolean"},
                                    "type": {"type": "string"},
                                },
                            }
                        ),
                    },
                },
                "Filter": {
                    "type": "object",
                    "properties": {
                        "event_types": array({"type": "string"}),
                        "min_severity": {"type": "string"},
                        "where": {"type": "object"},
                        "drop": array({"type": "string"}),
                        "mask": array({"type": "string"}),
                    },
                },
                "ConnectRequest": {
                    "type": "object",
                    "required": ["name", "vendor"],
                    "properties": {
                        "name": {"type": "string"},
                        "vendor": {"type": "string"},
                        "category": {"type": "string"},
                        "options": {"type": "object"},
                        "secrets": {
                            "type": "object",
                            "description": "field -> the secret's value (stored in the secret "
                            "store, never returned); blank keeps the stored one",
                        },
                        "filters": array(_ref("Filter")),
                        "start_from": {"enum": ["latest", "earliest"]},
                        "allow_private_network": {"type": "boolean"},
                        "allow_insecure_http": {"type": "boolean"},
                        "replace": {"type": "boolean", "description": "replace an integration of this name"},
                    },
                },
                "Integration": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "vendor": {"type": "string"},
                        "category": {"type": "string"},
                        "options": {"type": "object"},
                        "secrets": {"type": "object", "description": "field -> {set, reference}; never the value"},
                        "badge": {"enum": ["Connected", "Failing", "Not running", "Disabled"]},
                        "status": _ref("Status"),
                    },
                },
                "Status": {
                    "type": "object",
                    "properties": {
                        "state": {"type": "string"},
                        "instances": {"type": "integer"},
                        "lag": {"type": ["integer", "null"]},
                        "last_delivery": {"type": ["number", "null"]},
                        "delivered": {"type": "integer"},
                        "retried": {"type": "integer"},
                        "dead_lettered": {"type": "integer"},
                        "dead_letters_waiting": {"type": ["integer", "null"]},
                        "last_error": {
                            "type": ["string", "null"],
                            "description": "cleared once delivery succeeds again",
                        },
                        "last_error_at": {"type": ["number", "null"]},
                        "errors": {"type": "integer", "description": "failures over every run of its connectors"},
                    },
                },
                "Verdict": {
                    "type": "object",
                    "properties": {
                        "ok": {"type": "boolean"},
                        "kind": {"type": "string"},
                        "verdict": {"type": "string"},
                        "checked_at": {"type": "number"},
                    },
                },
                "DeadLetters": {
                    "type": "object",
                    "properties": {
                        "waiting": {"type": "integer"},
                        "retained": {"type": "integer"},
                        "groups": array({"type": "object"}),
                    },
                },
                "Job": {
                    "type": "object",
                    "properties": {
                        "id": {"type": "string"},
                        "kind": {"enum": ["replay", "redrive"]},
                        "integration": {"type": "string"},
                        "state": {"enum": ["running", "done", "failed", "stopped"]},
                        "total": {"type": ["integer", "null"]},
                        "done": {"type": "integer"},
                        "result": {"type": ["object", "null"]},
                        "error": {"type": ["string", "null"]},
                    },
                },
            },
        },
    }
