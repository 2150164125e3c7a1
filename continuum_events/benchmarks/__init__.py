"""Benchmarks: each measures its subject and a baseline in the same run, on the same broker,
and returns a :class:`Result`; run on both local engines, the results are set side by side."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

from continuum_events.terminal import out


@dataclass(frozen=True)
class Result:
    """One benchmark's medians on one broker: the subject's rate against its baseline's."""

    subject: str
    rate: float
    baseline: str
    baseline_rate: float
    met: bool
    note: str = ""

    @property
    def ratio(self) -> float:
        return self.rate / self.baseline_rate if self.baseline_rate else 0.0


def side_by_side(title: str, results: dict[str, Result]) -> None:
    """Print one row per engine, then each engine's ratio over the other's (when both ran):
    every figure in a row was measured on that engine in this run."""
    if len(results) < 2:
        return
    first = next(iter(results.values()))
    table = Table(
        "engine",
        f"{first.subject} /s",
        f"{first.baseline} /s",
        "ratio",
        "target",
        "note",
        title=f"{title}: the engines side by side",
    )
    for engine, r in results.items():
        table.add_row(
            engine,
            f"{r.rate:,.0f}",
            f"{r.baseline_rate:,.0f}",
            f"{r.ratio:.2f}",
            "met" if r.met else "MISSED",
            r.note,
        )
    out.print(table)
    if {"kafka", "tansu"} <= results.keys():
        k, t = results["kafka"], results["tansu"]
        out.print(
            f"kafka / tansu: {first.subject} {k.rate / t.rate:.2f}, {first.baseline} {k.baseline_rate / t.baseline_rate:.2f}"
        )
