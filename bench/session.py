"""Microseconds to handle one charge-loop request: EXI decode, the session core, EXI
encode of the response (median of repeated runs), for ISO 15118-2 CurrentDemandReq and
ISO 15118-20 DC_ChargeLoopReq side by side.  Prints figures; asserts nothing.

    .venv/bin/python bench/session.py [--repeat 7] [--number 2000]

Each session is brought to its DC charging loop by the EV simulator (DC, EIM; -20 with
scheduled control), then the same request stream is handled over and over.
Target: under 100 µs each.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import timeit
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from secc import codec
from secc.core.actions import SendResponse
from secc.core.config import ISO20_DC_NAMESPACE, SessionConfig
from secc.core.events import RequestReceived, Schema
from secc.core.session import SeccSession
from secc.ev.iso2 import EvScript, EvSimulator
from secc.ev.iso20 import Ev20Script, Ev20Simulator
from secc.testing.harness import run_session


@dataclass(frozen=True, slots=True)
class Case:
    label: str
    request: str  # the loop request's name
    config: SessionConfig
    script: EvScript | Ev20Script


CASES = (
    Case("ISO 15118-2", "CurrentDemandReq", SessionConfig(), EvScript(energy_mode="DC_extended")),
    Case(
        "ISO 15118-20",
        "DC_ChargeLoopReq",
        SessionConfig(protocols=(ISO20_DC_NAMESPACE,), iso20_allow_tcp=True),
        Ev20Script(mode="dc", control="scheduled"),
    ),
)


def _name(event: RequestReceived) -> str:
    body = getattr(event.message, "body", None)
    return type(body.body_element if body is not None else event.message).__name__


def charging_session(case: Case) -> tuple[SeccSession, bytes, Schema]:
    """A session in the DC charging loop, and one loop request as EXI (and its schema)."""
    found: list[tuple[SeccSession, Schema]] = []

    def keep(session: SeccSession, event: Any, actions: Any) -> None:
        loop = isinstance(event, RequestReceived) and _name(event) == case.request
        ok = loop and any(
            isinstance(a, SendResponse) and a.name == case.request[:-3] + "Res" for a in actions
        )
        if ok and not found:
            found.append((copy.deepcopy(session), event.schema))

    run_session(case.config, case.script, check=keep)
    if not found:
        raise SystemExit(f"{case.label}: the session never reached {case.request}")
    session, schema = found[0]
    ev: EvSimulator | Ev20Simulator
    if isinstance(case.script, Ev20Script):
        ev = Ev20Simulator(case.script)
        ev.loops = 1  # as in the loop: no meter reading asked
    else:
        ev = EvSimulator(case.script)
    ev.session_id = session.session_id
    return session, codec.encode(ev.request(case.request).message), schema


def measure(case: Case, repeat: int, number: int) -> None:
    session, data, schema = charging_session(case)
    assert session.deadline is not None
    now = session.deadline - session.config.timers.sequence_timeout + 0.1
    state = session.state

    def decode() -> Any:
        return codec.decode(data, schema.value)

    msg = decode()

    def core() -> list[Any]:
        return session.handle(RequestReceived(msg, schema), now)

    response: Any = next(a for a in core() if isinstance(a, SendResponse)).message
    body = getattr(response, "body", None)
    code = (body.body_element if body is not None else response).response_code.value
    assert code == "OK", response

    def encode() -> bytes:
        return codec.encode(response)

    def whole() -> bytes:
        acts = session.handle(RequestReceived(codec.decode(data, schema.value), schema), now)
        res = next(a for a in acts if isinstance(a, SendResponse))
        return codec.encode(res.message)

    res_name = case.request[:-3] + "Res"
    print(f"{case.label}: {case.request} {len(data)} bytes, {res_name} {len(encode())} bytes")
    steps: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("decode", decode),
        ("core", core),
        ("encode", encode),
        ("total", whole),
    )
    for label, fn in steps:
        runs = timeit.repeat(fn, repeat=repeat, number=number)
        us = statistics.median(runs) / number * 1e6
        print(f"{label:>8}: {us:8.1f} µs")
    assert session.state == state, (session.state, state)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/session.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    print(f"python {platform.python_version()} on {platform.machine()}")
    for case in CASES:
        measure(case, args.repeat, args.number)
    return 0


if __name__ == "__main__":
    sys.exit(main())
