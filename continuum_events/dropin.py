"""The import path Continuum's code already uses, so its calls need no edit.

Continuum imports its dispatcher as ``from app.services.integrations import EventType,
dispatch_event``. Either make that module this one::

    # app/services/integrations.py in Continuum, the whole file
    from continuum_events.dropin import *  # noqa: F403

or, without touching that file, alias the name once at start-up (the app factory)::

    import continuum_events.dropin
    continuum_events.dropin.install()            # "app.services.integrations" by default

Either way the app's calls go to :func:`dispatch_event` unchanged: values from its models
are made into events (:mod:`continuum_events.producers.coerce`), nothing is raised into the
app's ``except Exception`` unless it asks with ``strict=True`` or ``CONTINUUM_STRICT_EVENTS=1``.
"""

from __future__ import annotations

import importlib.util
import sys
import types

from continuum_events.events import EventType, Severity
from continuum_events.producers.app import configure, dispatch_event, dispatch_event_async, get_producer

__all__ = ["EventType", "Severity", "configure", "dispatch_event", "dispatch_event_async", "get_producer", "install"]

DEFAULT_NAME = "app.services.integrations"


def install(name: str = DEFAULT_NAME) -> types.ModuleType:
    """Make ``import <name>`` give this module. Parents that exist (Continuum's own ``app``
    package) are used as they are; missing ones are created empty. Returns this module."""
    this = sys.modules[__name__]
    parts = name.split(".")
    for depth in range(1, len(parts)):
        parent = ".".join(parts[:depth])
        if parent in sys.modules:
            continue
        try:
            found = importlib.util.find_spec(parent) is not None
        except (ImportError, ValueError):
            found = False
        if found:
            importlib.import_module(parent)
        else:
            stub = types.ModuleType(parent, "created by continuum_events.dropin.install()")
            stub.__path__ = []
            sys.modules[parent] = stub
        if depth > 1:
            setattr(sys.modules[".".join(parts[: depth - 1])], parts[depth - 1], sys.modules[parent])
    sys.modules[name] = this
    if len(parts) > 1:
        setattr(sys.modules[".".join(parts[:-1])], parts[-1], this)
    return this
