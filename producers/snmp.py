"""One poll of one printer: a single SNMP GET of the health objects, and, only when SNMP
stays silent, a TCP connect to the print ports to tell "down" from "not answering us".

SNMP v1 and v2c go through pysnmp's v1arch API (one ``SnmpDispatcher``, no per-target
registration: the v3arch engine rebuilds its tables per new target, see
``../shared/PRINTERS.md``); SNMPv3 (USM: authentication and privacy) through one v3arch
engine, which is fine for the few printers a fleet configures with v3. Numeric OIDs, no
MIB lookups, explicit timeout and retries. A v3 agent that refuses our credentials
(unknown user, wrong digest, cannot decrypt) answered: the printer is there and the
probe is misconfigured for it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from pyasn1.type.univ import Null
from pydantic import SecretStr
from pysnmp.hlapi import v3arch
from pysnmp.hlapi.v1arch.asyncio import CommunityData, SnmpDispatcher, UdpTransportTarget, get_cmd
from pysnmp.proto import errind
from pysnmp.proto.rfc1905 import EndOfMibView, NoSuchInstance, NoSuchObject

from continuum_events.producers.health import Reading, decode


def health_oids(device: int = 1, supply: int = 1) -> dict[str, str]:
    """The objects a poll reads (Host Resources and Printer MIBs), by field name."""
    return {
        "device_status": f"1.3.6.1.2.1.25.3.2.1.5.{device}",  # hrDeviceStatus
        "error_state": f"1.3.6.1.2.1.25.3.5.1.2.{device}",  # hrPrinterDetectedErrorState
        "toner_capacity": f"1.3.6.1.2.1.43.11.1.1.8.{device}.{supply}",  # prtMarkerSuppliesMaxCapacity
        "toner_level": f"1.3.6.1.2.1.43.11.1.1.9.{device}.{supply}",  # prtMarkerSuppliesLevel
    }


AUTH_PROTOCOLS = {
    "none": v3arch.asyncio.USM_AUTH_NONE,
    "md5": v3arch.asyncio.USM_AUTH_HMAC96_MD5,
    "sha": v3arch.asyncio.USM_AUTH_HMAC96_SHA,
    "sha224": v3arch.asyncio.USM_AUTH_HMAC128_SHA224,
    "sha256": v3arch.asyncio.USM_AUTH_HMAC192_SHA256,
    "sha384": v3arch.asyncio.USM_AUTH_HMAC256_SHA384,
    "sha512": v3arch.asyncio.USM_AUTH_HMAC384_SHA512,
}
PRIV_PROTOCOLS = {
    "none": v3arch.asyncio.USM_PRIV_NONE,
    "des": v3arch.asyncio.USM_PRIV_CBC56_DES,
    "3des": v3arch.asyncio.USM_PRIV_CBC168_3DES,
    "aes": v3arch.asyncio.USM_PRIV_CFB128_AES,
    "aes192": v3arch.asyncio.USM_PRIV_CFB192_AES,
    "aes256": v3arch.asyncio.USM_PRIV_CFB256_AES,
}


@dataclass(frozen=True)
class V3:
    """SNMPv3 USM credentials; keys never print."""

    user: str
    auth_protocol: str = "sha"
    auth_key: SecretStr | None = None
    priv_protocol: str = "aes"
    priv_key: SecretStr | None = None
    context: str = ""

    def user_data(self) -> v3arch.asyncio.UsmUserData:
        auth = self.auth_key.get_secret_value() if self.auth_key else None
        priv = self.priv_key.get_secret_value() if self.priv_key else None
        return v3arch.asyncio.UsmUserData(
            self.user,
            auth,
            priv,
            authProtocol=AUTH_PROTOCOLS[self.auth_protocol if auth else "none"],
            privProtocol=PRIV_PROTOCOLS[self.priv_protocol if priv else "none"],
        )


@dataclass(frozen=True)
class Target:
    """Where and how to poll one printer."""

    ip: str
    snmp_port: int = 161
    community: str = "public"
    version: str = "2c"  # "1", "2c" or "3"
    tcp_ports: Sequence[int] = (9100, 631)
    device_index: int = 1
    v3: V3 | None = None


@dataclass(frozen=True)
class Timing:
    timeout_s: float = 1.5
    retries: int = 1
    tcp_timeout_s: float = 1.0


class Poller:
    """Polls targets on one dispatcher; transport targets are made once per printer."""

    def __init__(self, timing: Timing = Timing()) -> None:
        self.timing = timing
        self._dispatcher: SnmpDispatcher | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transports: dict[tuple[str, int], UdpTransportTarget] = {}
        self._engine: v3arch.asyncio.SnmpEngine | None = None
        self._engine_loop: asyncio.AbstractEventLoop | None = None
        self._v3_transports: dict[tuple[str, int], v3arch.asyncio.UdpTransportTarget] = {}

    @property
    def dispatcher(self) -> SnmpDispatcher:
        """The dispatcher of the running event loop (pysnmp binds one to the loop it starts in)."""
        loop = asyncio.get_running_loop()
        if self._dispatcher is None or self._loop is not loop:
            self._dispatcher, self._loop = SnmpDispatcher(), loop
            self._transports.clear()
        return self._dispatcher

    async def poll(self, target: Target) -> Reading:
        started = time.perf_counter()
        oids = health_oids(target.device_index)
        try:
            if target.v3 is not None:
                error, status, binds = await self._get_v3(target, list(oids.values()))
            else:
                transport = await self._transport(target)
                error, status, _, binds = await get_cmd(
                    self.dispatcher,
                    CommunityData(target.community, mpModel=0 if target.version == "1" else 1),
                    transport,
                    *((oid, Null("")) for oid in oids.values()),
                    lookupMib=False,
                )
        except Exception as exc:  # noqa: BLE001 - a garbled answer is a failed poll, never a dead probe
            error, status, binds = exc, 0, ()
        elapsed_ms = (time.perf_counter() - started) * 1000
        if error or status:
            # An error status still proves the agent answered (v1 noSuchName on a missing object).
            if status and not error:
                return decode({}, elapsed_ms)
            if (
                target.v3 is not None
                and isinstance(error, errind.ErrorIndication)
                and not isinstance(error, errind.RequestTimedOut)
            ):
                return Reading(False, present=True)  # the agent refused our credentials
            return Reading(False, present=await self.port_open(target))
        by_oid = {str(vb[0]): vb[1] for vb in binds}
        values = {}
        for field, oid in oids.items():
            value = by_oid.get(oid)
            if value is None or isinstance(value, (NoSuchInstance, NoSuchObject, EndOfMibView)):
                continue
            values[field] = bytes(value) if field == "error_state" and hasattr(value, "asOctets") else _plain(value)
        return decode(values, elapsed_ms)

    async def _get_v3(self, target: Target, oids: list[str]) -> tuple[object, object, list]:
        loop = asyncio.get_running_loop()
        if self._engine is None or self._engine_loop is not loop:
            self._engine, self._engine_loop = v3arch.asyncio.SnmpEngine(), loop
            self._v3_transports.clear()
        assert target.v3 is not None
        key = (target.ip, target.snmp_port)
        transport = self._v3_transports.get(key)
        if transport is None:
            transport = self._v3_transports[key] = await v3arch.asyncio.UdpTransportTarget.create(
                key, timeout=self.timing.timeout_s, retries=self.timing.retries
            )
        error, status, _, binds = await v3arch.asyncio.get_cmd(
            self._engine,
            target.v3.user_data(),
            transport,
            v3arch.asyncio.ContextData(contextName=target.v3.context),
            *(v3arch.asyncio.ObjectType(v3arch.asyncio.ObjectIdentity(oid)) for oid in oids),
            lookupMib=False,
        )
        return error, status, list(binds)

    async def port_open(self, target: Target) -> bool:
        """Connect and close at once (never send: bytes sent to 9100 get printed)."""
        for port in target.tcp_ports:
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(target.ip, port), self.timing.tcp_timeout_s)
            except (TimeoutError, OSError):
                continue
            writer.close()
            return True
        return False

    async def _transport(self, target: Target) -> UdpTransportTarget:
        key = (target.ip, target.snmp_port)
        transport = self._transports.get(key)
        if transport is None:
            transport = await UdpTransportTarget.create(key, timeout=self.timing.timeout_s, retries=self.timing.retries)
            self._transports[key] = transport
        return transport

    def forget(self, target: Target) -> None:
        self._transports.pop((target.ip, target.snmp_port), None)
        self._v3_transports.pop((target.ip, target.snmp_port), None)

    def close(self) -> None:
        if self._dispatcher is not None and self._loop is not None and not self._loop.is_closed():
            self._dispatcher.transport_dispatcher.close_dispatcher()
        self._dispatcher = None


def _plain(value: object) -> object:
    """An SNMP value as a Python int or bytes (or the value itself if neither)."""
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        pass
    if hasattr(value, "asOctets"):
        return value.asOctets()  # type: ignore[attr-defined]
    return value
