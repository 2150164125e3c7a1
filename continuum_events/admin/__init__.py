"""The integrations admin: an HTTP API and the Admin → Integrations page over the same
functions as the CLI (:mod:`continuum_events.operations`)."""

from continuum_events.admin.api import admin_blueprint, create_app
from continuum_events.admin.service import AdminService, Problem

__all__ = ["AdminService", "Problem", "admin_blueprint", "create_app"]
