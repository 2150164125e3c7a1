"""The soak run is not part of the suite: ``make test`` collects it and skips it. It runs
when asked for — ``make soak``, ``pytest tests/soak -m soak``, or SOAK_SECONDS set."""

from __future__ import annotations

import os

import pytest


def soak_asked(config: pytest.Config) -> bool:
    marks = config.getoption("markexpr") or ""
    return "SOAK_SECONDS" in os.environ or ("soak" in marks and "not soak" not in marks)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Called with every item of the session, not only this folder's: only soak-marked ones are skipped.
    if soak_asked(config):
        return
    skip = pytest.mark.skip(reason="the soak run: `make soak` (`SOAK_SECONDS=90 SOAK_RATE=300 make soak`: a short one)")
    for item in items:
        if item.get_closest_marker("soak") is not None:
            item.add_marker(skip)
