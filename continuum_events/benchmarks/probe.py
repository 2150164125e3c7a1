"""The health probe against a simulated fleet: sweep time, CPU seconds per sweep and
false offline events, against bare SNMP GETs of the same objects at the same
concurrency measured in the same run (the probe's own cost shows as the ratio).

Every simulated printer is healthy, so any printer.offline is a false one (target 0).
Sweeps here are unpaced (as fast as the fleet answers) to measure capacity; in service
the probe spreads one sweep over 90 % of its interval.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections import Counter

from pyasn1.type.univ import Null
from pysnmp.hlapi.v1arch.asyncio import CommunityData, SnmpDispatcher, UdpTransportTarget, get_cmd
from rich.table import Table

from continuum_events.devtools.fleet import SimulatedFleet
from continuum_events.producers.inventory import PrinterEntry
from continuum_events.producers.probe import Probe, ProbeConfig
from continuum_events.producers.snmp import Timing, health_oids
from continuum_events.terminal import console, out


async def bare_sweep(printers: list[PrinterEntry], concurrency: int, timing: Timing) -> tuple[float, float, int]:
    """One GET per printer, nothing else: (seconds, CPU seconds, answered)."""
    dispatcher, gate, oids = SnmpDispatcher(), asyncio.Semaphore(concurrency), list(health_oids().values())
    targets = {
        p.id: await UdpTransportTarget.create((p.ip, p.snmp_port), timeout=timing.timeout_s, retries=timing.retries)
        for p in printers
    }
    answered = 0

    async def one(printer: PrinterEntry) -> None:
        nonlocal answered
        async with gate:
            error, status, _, _ = await get_cmd(
                dispatcher,
                CommunityData(printer.community, mpModel=1),
                targets[printer.id],
                *((o, Null("")) for o in oids),
                lookupMib=False,
            )
        answered += not error and not status

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(p) for p in printers))
    elapsed, cpu_s = time.perf_counter() - started, time.process_time() - cpu
    dispatcher.transport_dispatcher.close_dispatcher()
    return elapsed, cpu_s, answered


def measure(sizes: list[int], sweeps: int, concurrency: int) -> None:
    timing = Timing(timeout_s=1.5, retries=1)
    table = Table(title=f"health probe: {sweeps} unpaced sweeps per fleet, concurrency {concurrency}")
    for column in (
        "printers",
        "fleet start s",
        "bare GET sweep s",
        "probe sweep s (median)",
        "probe/bare",
        "probe CPU s per sweep",
        "answered (last sweep)",
        "false offline",
    ):
        table.add_column(column, justify="right")
    for size in sizes:
        addresses = max(1, size // 100)
        console.print(f"starting a simulated fleet of {size:,} printers on {addresses} addresses …")
        with SimulatedFleet(size, addresses=addresses) as fleet:
            printers = [PrinterEntry.model_validate(row) for row in fleet.inventory()]
            events: Counter[str] = Counter()
            probe = Probe(
                printers,
                lambda kind, payload, details, events=events: events.update([kind]),
                ProbeConfig(concurrency=concurrency, timing=timing),
            )

            async def run(
                printers: list[PrinterEntry] = printers, probe: Probe = probe, events: Counter[str] = events
            ) -> tuple[tuple[float, float, int], list]:
                await bare_sweep(printers[:50], concurrency, timing)  # warm-up: first GETs of a process are slow
                base = await bare_sweep(printers, concurrency, timing)
                stats = []
                for i in range(sweeps):
                    stats.append(await probe.sweep(window_s=0))
                    console.print(
                        f"  sweep {i + 1}: {stats[-1].seconds:.1f} s, {stats[-1].cpu_seconds:.1f} CPU s, "
                        f"{stats[-1].answered:,} answered"
                    )
                return base, stats

            (base_s, _, _), stats = asyncio.run(run())
            median = statistics.median(s.seconds for s in stats)
            table.add_row(
                f"{size:,}",
                f"{fleet.startup_s:.1f}",
                f"{base_s:.1f}",
                f"{median:.1f}",
                f"{median / base_s:.2f}",
                f"{statistics.median(s.cpu_seconds for s in stats):.1f}",
                f"{stats[-1].answered:,}",
                str(events["printer.offline"]),
            )
            probe.poller.close()
    out.print(table)
    out.print("Target: 10,000 printers per 60 s cycle in one process, 0 false offline events.")
