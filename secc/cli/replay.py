"""``secc replay TRACE``: feed a session trace back through the core and report where
its behaviour differs.

The trace's header rebuilds the session configuration and trust roots; the recorded
random bytes and UTC readings are handed back in order; every recorded input (request
EXI, EVSE fact, authorization answer, timer) is fed at its recorded time; every output
the core produces now (response EXI, action) is compared with the recorded one.  Exit 0
when the replay is identical, 1 at the first difference (printed with both sides), 2 on
a usage error or an unreadable trace.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from secc import codec
from secc.cli._help import summary
from secc.core.actions import Action, SendResponse
from secc.core.config import (
    AcLimits,
    DcLimits,
    PausedSession,
    PncTrust,
    SessionConfig,
    Timers,
)
from secc.core.events import (
    AuthorizationResult,
    CertificateResult,
    ConnectionLost,
    Event,
    EvseFault,
    EvseStatus,
    RequestReceived,
    Schema,
    StopRequested,
    TimerExpired,
)
from secc.core.session import SeccSession
from secc.trace import Record, TraceError, jsonable, read_trace

FACTS: dict[str, type[Any]] = {
    "EvseStatus": EvseStatus,
    "AuthorizationResult": AuthorizationResult,
    "EvseFault": EvseFault,
    "StopRequested": StopRequested,
    "ConnectionLost": ConnectionLost,
    "TimerExpired": TimerExpired,
}


@dataclass(slots=True)
class Report:
    inputs: int = 0
    outputs: int = 0
    differences: list[str] = field(default_factory=list)


def _config(header: Record) -> SessionConfig:
    c = dict(header["config"])
    c["ac"] = AcLimits(**c["ac"])
    c["dc"] = DcLimits(**c["dc"])
    c["timers"] = Timers(**c["timers"])
    c["energy_modes"] = tuple(c["energy_modes"])
    c["protocols"] = tuple(c["protocols"])
    if "iso20_control_modes" in c:  # traces before ISO 15118-20 lack the -20 keys
        c["iso20_control_modes"] = tuple(c["iso20_control_modes"])

    def certs(hexes: list[str]) -> tuple[x509.Certificate, ...]:
        return tuple(x509.load_der_x509_certificate(bytes.fromhex(h)) for h in hexes)

    c["vehicle_chain"] = certs(c.get("vehicle_chain", []))  # -20 mutual TLS (newer traces)
    roots, oem_roots = certs(header.get("trust", [])), certs(header.get("oem_trust", []))
    return SessionConfig(**c, trust=PncTrust(roots=roots, oem_roots=oem_roots))


def _resume(data: Any) -> PausedSession | None:
    """The paused session the recorded one could join, as the station held it: with the
    ISO 15118-20 fields (authorization, service and control mode carried over, the
    vehicle certificate that binds it to the EV); traces before them lack these keys."""
    if not data:
        return None

    def octets(key: str) -> bytes | None:
        value = data.get(key)
        return None if value is None else bytes.fromhex(value)

    return PausedSession(
        session_id=bytes.fromhex(data["session_id"]),
        evcc_id=bytes.fromhex(data["evcc_id"]),
        protocol=data["protocol"],
        payment_option=data["payment_option"],
        emaid=data["emaid"],
        contract_chain=tuple(bytes.fromhex(c) for c in data["contract_chain"]),
        authorized=bool(data.get("authorized", False)),
        service_id=data.get("service_id"),
        parameter_set_id=data.get("parameter_set_id"),
        control_mode=data.get("control_mode"),
        vehicle_certificate=octets("vehicle_certificate"),
    )


class _RandomExhaustedError(Exception):
    """The core drew more random bytes than the trace recorded: the replay diverged (and
    the core may draw again until it gets a usable value, so it must stop here)."""


def _event(record: Record) -> Event:
    if record["kind"] == "rx":
        schema = Schema(record["schema"])
        root, message, violations = codec.decode_checked(bytes.fromhex(record["exi"]), schema.value)
        return RequestReceived(message, schema, violations, root.local)  # as the station got it
    name, fields = record["event"], dict(record["fields"])
    if name == "CertificateResult":
        exi = fields.get("exi_response")
        return CertificateResult(bytes.fromhex(exi) if exi else None, fields.get("reason", ""))
    if name not in FACTS:
        raise TraceError(f"unknown event {name!r} in the trace")
    event: Event = FACTS[name](**fields)
    return event


def _output(action: Action) -> tuple[str, str, Any]:
    if isinstance(action, SendResponse):  # the bytes the station sends (exi when given)
        exi = action.exi if action.exi is not None else codec.encode(action.message)
        return ("tx", action.name, exi.hex())
    return ("action", type(action).__name__, jsonable(action))


def _recorded(record: Record) -> tuple[str, str, Any]:
    if record["kind"] == "tx":
        return ("tx", record["name"], record["exi"])
    return ("action", record["action"], record["fields"])


def replay(records: list[Record]) -> Report:
    if not records or records[0].get("kind") != "session":
        raise TraceError("the first line is not a session header")
    header = records[0]
    randoms = deque(bytes.fromhex(r["hex"]) for r in records if r["kind"] == "random")
    clocks = deque(dt.datetime.fromisoformat(r["iso"]) for r in records if r["kind"] == "utc")
    report = Report()
    started = dt.datetime.fromisoformat(header["started"])

    def random_bytes(n: int) -> bytes:
        if not randoms:
            report.differences.append(f"the core drew {n} random bytes more than recorded")
            raise _RandomExhaustedError
        data = randoms.popleft()
        return data[:n].ljust(n, b"\0")

    def utc_now() -> dt.datetime:
        return clocks.popleft() if clocks else started

    session = SeccSession(
        _config(header),
        now=0.0,
        random_bytes=random_bytes,
        utc_now=utc_now,
        resume=_resume(header.get("resume")),
    )
    expected: deque[tuple[str, str, Any]] = deque()
    produced: deque[tuple[str, str, Any]] = deque()
    where = "start"
    for record in records[1:]:
        kind = record["kind"]
        if kind in ("rx", "fact"):
            _compare(expected, produced, where, report)
            if report.differences:
                return report
            event = _event(record)
            where = f"t={record['t']:.3f} s after {record.get('name') or record.get('event')}"
            report.inputs += 1
            try:
                actions = session.handle(event, float(record["t"]))
            except _RandomExhaustedError:
                report.differences[-1] = f"{where}: {report.differences[-1]}"
                return report
            produced.extend(_output(a) for a in actions)
        elif kind in ("tx", "action"):
            expected.append(_recorded(record))
    _compare(expected, produced, where, report)
    return report


def _compare(
    expected: deque[tuple[str, str, Any]],
    produced: deque[tuple[str, str, Any]],
    where: str,
    report: Report,
) -> None:
    while expected or produced:
        want = expected.popleft() if expected else None
        got = produced.popleft() if produced else None
        report.outputs += 1
        if want != got:
            report.differences.append(f"{where}: recorded {_show(want)}\n    replayed {_show(got)}")
            return


def _show(item: tuple[str, str, Any] | None) -> str:
    if item is None:
        return "nothing"
    kind, name, data = item
    text = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return f"{kind} {name} {text[:160]}{'...' if len(text) > 160 else ''}"


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=summary(__doc__))
    parser.add_argument("trace", type=Path, help="a session trace (.jsonl)")
    args = parser.parse_args(argv)
    try:
        records = list(read_trace(args.trace))
        report = replay(records)
    except (TraceError, KeyError, TypeError, ValueError, codec.DecodeError) as exc:
        detail = f"missing field {exc}" if isinstance(exc, KeyError) else str(exc)
        print(f"{prog}: {args.trace}: cannot replay: {detail}", file=sys.stderr)
        return 2
    if report.differences:
        print(f"{args.trace}: DIFFERS after {report.inputs} input(s):")
        for line in report.differences:
            print(f"  {line}")
        return 1
    print(f"{args.trace}: identical: {report.inputs} input(s), {report.outputs} output(s)")
    return 0
