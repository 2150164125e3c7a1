"""The admin HTTP API and the Admin → Integrations page, as a Flask blueprint.

Continuum mounts it in its own app, protected by its own login; or
``continuum-events admin`` serves it alone, protected by a bearer token. It is never
open: building it without a token or an ``authorize`` function is an error::

    # mounted: ``authorize(request) -> bool`` is the host's authentication hook, called
    # before every API call inside the host's request context (its session, its
    # flask_login.current_user); the page then uses that session and asks for no token.
    app.register_blueprint(admin_blueprint(service, authorize=lambda request: current_user.is_authenticated
                                           and current_user.is_admin), url_prefix="/admin/integrations")
    # standalone:
    create_app(service, token=os.environ["CONTINUUM_ADMIN_TOKEN"]).run(port=8080)

Both ways answer the same: security headers (Content-Security-Policy, nosniff,
no-store) on every response and a problem document for every error, never the host's
HTML error page nor an exception's text.

Requests that change something must be JSON (``Content-Type: application/json``),
carry ``X-Requested-With: continuum-admin``, and, when the browser sends an
``Origin``, come from this server's origin: a cross-site page can send none of those
without a CORS preflight, which this API never grants (cross-site request forgery).
Errors are problem documents (``application/problem+json``) with field-level messages.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from collections.abc import Callable
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from continuum_events.admin.openapi import openapi_document
from continuum_events.admin.service import AdminService, Problem

log = logging.getLogger(__name__)
CSRF_HEADER = "X-Requested-With"
CSRF_VALUE = "continuum-admin"
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
METHODS = {"GET", "HEAD", *UNSAFE}
#: A request body larger than this is refused before it is read (a form is a few KiB).
MAX_BODY_BYTES = 2 * 1024 * 1024
#: A form nests five levels (body, filters, a filter, where, a value list).
MAX_DEPTH = 32
#: Strings (escapes included) and brackets: enough to measure a JSON text's nesting.
_JSON_TOKENS = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]')


def admin_blueprint(
    service: AdminService,
    *,
    token: str | None = None,
    authorize: Callable[[Any], bool] | None = None,
    name: str = "continuum_admin",
) -> Blueprint:
    if not token and authorize is None:
        raise ValueError("the admin API is never open: give a token or an authorize function")
    bp = Blueprint(name, __name__)

    allowed: dict[str, set[str]] = {}  # each rule's methods, for the Allow header of a 405

    def route(method: str, rule: str) -> Callable[[Any], Any]:
        allowed.setdefault(rule, set()).add(method)
        return bp.route(rule, methods=[method])

    @bp.before_request
    def _guard() -> Response | None:
        if request.endpoint and request.endpoint.endswith((".page", ".asset", ".openapi", ".unknown")):
            return None  # the page and its code hold no data; every call they make is checked
        if not _authorized(request, token, authorize):
            return _problem(
                Problem(401, "Unauthorized", "a valid admin token is required"),
                {"WWW-Authenticate": 'Bearer realm="continuum-events"'},
            )
        if request.method in UNSAFE:
            origin = request.headers.get("Origin")
            if origin and _origin(origin) != _origin(request.host_url):
                return _problem(Problem(403, "Forbidden", "cross-site request refused"))
            if request.headers.get(CSRF_HEADER) != CSRF_VALUE:
                return _problem(Problem(403, "Forbidden", f"state-changing calls need the {CSRF_HEADER} header"))
            if request.content_length and not request.is_json:
                return _problem(Problem(415, "Unsupported media type", "send application/json"))
        return None

    @bp.errorhandler(Problem)
    def _on_problem(problem: Problem) -> Response:
        return _problem(problem)

    @bp.errorhandler(Exception)
    def _on_error(exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            return _problem(Problem(exc.code or 500, exc.name))
        # The type only: an exception's text may quote what it was given.
        log.error("admin API: %s at %s %s", type(exc).__name__, request.method, request.path)
        return _problem(Problem(500, "Internal error", f"{type(exc).__name__}; see the server log"))

    @bp.after_request
    def _headers(response: Response) -> Response:
        return _secure(response)

    def body() -> Any:
        if not request.content_length:
            return {}
        if request.content_length > MAX_BODY_BYTES:
            raise Problem(
                413,
                "Body too large",
                f"at most {MAX_BODY_BYTES // 1024} KiB",
                errors=[{"field": "body", "message": f"at most {MAX_BODY_BYTES // 1024} KiB"}],
            )
        return parse_body(request.get_data(cache=False))

    # -- the page --------------------------------------------------------------------------
    @route("GET", "/")
    def page() -> Response:
        html = _static("index.html", "text/html; charset=utf-8")
        if authorize is not None:  # mounted: the host's session signs in, no token form
            text = html.get_data(as_text=True)
            text = re.sub(r"<!-- token -->.*<!-- /token -->", "", text, flags=re.DOTALL)
            html.set_data(text.replace("<body>", '<body data-auth="session">', 1))
        return html

    @route("GET", "/static/<string:filename>")
    def asset(filename: str) -> Response:
        kinds = {"app.js": "text/javascript; charset=utf-8", "style.css": "text/css; charset=utf-8"}
        if filename not in kinds:
            raise Problem(404, "Not found")
        return _static(filename, kinds[filename])

    @route("GET", "/api/openapi.json")
    def openapi() -> Response:
        return jsonify(openapi_document())

    # -- the API ---------------------------------------------------------------------------
    @route("GET", "/api/vendors")
    def vendors() -> Response:
        return jsonify(service.vendors())

    @route("GET", "/api/integrations")
    def integrations() -> Response:
        return jsonify(service.integrations())

    @route("POST", "/api/integrations")
    def connect() -> tuple[Response, int]:
        return jsonify(service.connect(body())), 201

    @route("GET", "/api/integrations/<string:name>")
    def integration(name: str) -> Response:
        return jsonify(service.integration(name))

    @route("GET", "/api/integrations/<string:name>/history")
    def history(name: str) -> Response:
        return jsonify(service.history(name))

    @route("PUT", "/api/integrations/<string:name>")
    def edit(name: str) -> Response:
        return jsonify(service.edit(name, body()))

    @route("DELETE", "/api/integrations/<string:name>")
    def disconnect(name: str) -> tuple[str, int]:
        service.disconnect(name)
        return "", 204

    @route("POST", "/api/integrations/<string:name>/test")
    def test(name: str) -> Response:
        return jsonify(service.test(name))

    @route("PUT", "/api/integrations/<string:name>/filters")
    def filters(name: str) -> Response:
        data = body()
        return jsonify(service.set_filters(name, data.get("filters") if isinstance(data, dict) else None))

    @route("GET", "/api/integrations/<string:name>/dead-letters")
    def dead_letters(name: str) -> Response:
        return jsonify(service.dead_letters(name))

    @route("POST", "/api/integrations/<string:name>/dead-letters/redrive")
    def redrive(name: str) -> tuple[Response, int]:
        return jsonify(service.start_redrive(name, body()).as_json()), 202

    @route("POST", "/api/integrations/<string:name>/replay")
    def replay(name: str) -> tuple[Response, int]:
        return jsonify(service.start_replay(name, body()).as_json()), 202

    @route("GET", "/api/jobs/<string:job_id>")
    def job(job_id: str) -> Response:
        return jsonify(service.job(job_id).as_json())

    @route("GET", "/api/rules")
    def rules() -> Response:
        return jsonify(service.rules())

    @route("PUT", "/api/rules/<string:name>")
    def set_rule(name: str) -> Response:
        return jsonify(service.set_rule(name, body()))

    @route("DELETE", "/api/rules/<string:name>")
    def delete_rule(name: str) -> tuple[str, int]:
        service.delete_rule(name)
        return "", 204

    # The blueprint answers every method and path under it itself: a host app's router
    # would answer them with its own HTML pages, and with no Allow header.
    for i, (rule, methods) in enumerate(allowed.items()):
        implied = methods | ({"HEAD"} if "GET" in methods else set()) | {"OPTIONS"}
        bp.add_url_rule(
            rule,
            f"not_allowed_{i}",
            _not_allowed(", ".join(sorted(implied))),
            methods=sorted(METHODS - implied),
            provide_automatic_options=False,
        )
    bp.add_url_rule("/<path:unknown>", "unknown", _unknown, methods=sorted(METHODS | {"OPTIONS"}))
    return bp


def _not_allowed(allow: str) -> Callable[..., Response]:
    def view(**_: Any) -> Response:
        raise Problem(405, "Method not allowed", f"allowed: {allow}", headers={"Allow": allow})

    return view


def _unknown(unknown: str) -> Response:
    raise Problem(404, "Not found")


def create_app(service: AdminService, *, token: str) -> Flask:
    """The standalone server's app: the blueprint at /, bearer-token protected."""
    app = Flask("continuum_events.admin")
    app.register_blueprint(admin_blueprint(service, token=token))

    @app.errorhandler(404)
    def _not_found(_: Exception) -> Response:
        return _problem(Problem(404, "Not found"))

    @app.errorhandler(405)
    def _method_not_allowed(exc: MethodNotAllowed) -> Response:
        allow = ", ".join(sorted(exc.valid_methods or ()))
        return _problem(Problem(405, "Method not allowed", headers={"Allow": allow} if allow else None))

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.error("admin API: %s at %s %s", type(exc).__name__, request.method, request.path)
        return _problem(Problem(500, "Internal error", f"{type(exc).__name__}; see the server log"))

    app.after_request(_secure)
    return app


def _secure(response: Response) -> Response:
    response.headers.setdefault("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def parse_body(raw: bytes) -> Any:
    """The JSON body, its nesting checked before it is parsed (the parser recurses once per
    level: a body nested 100,000 deep would end in RecursionError, a 500)."""
    depth, key = 0, "body"
    for token in _JSON_TOKENS.finditer(raw):
        char = token.group()[:1]
        if char == b'"':
            if depth == 1:  # the last string at the top level before a nested value is its key
                key = token.group()[1:-1].decode("utf-8", "replace")
            continue
        depth += 1 if char in b"[{" else -1
        if depth > MAX_DEPTH:
            message = f"nested deeper than {MAX_DEPTH} levels"
            raise Problem(
                400, "Bad request", message, errors=[{"field": key if depth > 2 else "body", "message": message}]
            )
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        raise Problem(
            400, "Bad request", "the body is not valid JSON", errors=[{"field": "body", "message": "not valid JSON"}]
        ) from None


def _authorized(req: Any, token: str | None, authorize: Callable[[Any], bool] | None) -> bool:
    if authorize is not None and authorize(req):
        return True
    if token:
        scheme, _, given = (req.headers.get("Authorization") or "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
    return False


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc


def _problem(problem: Problem, headers: dict[str, str] | None = None) -> Response:
    response = jsonify(problem.body())
    response.status_code = problem.status
    response.mimetype = "application/problem+json"
    for key, value in {**problem.headers, **(headers or {})}.items():
        response.headers[key] = value
    return response


def _static(filename: str, kind: str) -> Response:
    text = resources.files("continuum_events.admin").joinpath("static", filename).read_text(encoding="utf-8")
    return Response(text, content_type=kind)
