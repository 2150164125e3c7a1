"""The admin page's charts come from the status topic: per minute over the last hour, the
delivery rate from the growth of each connector instance's delivered count, and the lag
summed over instances (StatusBoard.history)."""

from __future__ import annotations

from continuum_events.settings import KafkaSettings
from continuum_events.status import StatusBoard

NOW = 1_800_000_000.0


def board_with(reports: list[tuple[float, str, int, int | None]]) -> StatusBoard:
    board = StatusBoard(KafkaSettings(bootstrap_servers="127.0.0.1:9"), keep_s=10**10)  # never started
    for updated, instance, delivered, lag in reports:
        board.seen(
            f"splunk@{instance}",
            {"integration": "splunk", "instance": instance, "updated": updated, "delivered": delivered, "lag": lag},
        )
    return board


def test_rate_comes_from_the_growth_of_each_instances_count_and_lag_is_summed() -> None:
    minute = NOW - 120  # two minutes ago: index 57 of 60
    board = board_with(
        [
            (minute + 1, "a", 100, 5),
            (minute + 31, "a", 160, 3),  # a: +60 in the minute
            (minute + 2, "b", 10, 1),
            (minute + 32, "b", 40, 2),  # b: +30
            (NOW - 30, "a", 220, 0),  # the last minute: +60 from a
            (NOW - 29, "c", 5, 7),  # c: a restarted run, first report
        ]
    )
    history = board.history("splunk", now=NOW)
    assert len(history["rate"]) == 60 == len(history["lag"]) and history["step_s"] == 60
    assert history["rate"][58] == 90 / 60 and history["lag"][58] == 3 + 2
    assert history["rate"][59] == 60 / 60 and history["lag"][59] == 0 + 7, "a new run's first count adds nothing"
    assert history["rate"][:58] == [None] * 58 and history["lag"][0] is None, "no report: no point, never zero"


def test_a_count_that_falls_is_a_restart_not_a_negative_rate() -> None:
    board = board_with([(NOW - 90, "a", 500, 0), (NOW - 40, "a", 3, 0), (NOW - 20, "a", 9, 0)])
    history = board.history("splunk", now=NOW)
    assert history["rate"][59] == 6 / 60 and min(r for r in history["rate"] if r is not None) >= 0


def test_reports_older_than_the_window_are_not_kept() -> None:
    board = StatusBoard(KafkaSettings(bootstrap_servers="127.0.0.1:9"), keep_s=3600)
    board.seen("splunk@a", {"integration": "splunk", "instance": "a", "updated": 1.0, "delivered": 1, "lag": 0})
    assert board.history("splunk")["rate"] == [None] * 60


def test_a_run_that_began_inside_the_window_counts_from_zero() -> None:
    board = StatusBoard(KafkaSettings(bootstrap_servers="127.0.0.1:9"), keep_s=10**10)
    board.seen(
        "splunk@a",
        {"integration": "splunk", "instance": "a", "updated": NOW - 10, "delivered": 20, "lag": 0, "started": NOW - 50},
    )
    board.seen(
        "splunk@b",
        {
            "integration": "splunk",
            "instance": "b",
            "updated": NOW - 10,
            "delivered": 900,
            "lag": 0,
            "started": NOW - 7200,
        },
    )  # began before the window: its count is old
    assert board.history("splunk", now=NOW)["rate"][59] == 20 / 60
