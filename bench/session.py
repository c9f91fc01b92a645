"""Microseconds to handle one CurrentDemandReq: EXI decode, the session core, EXI encode of
the CurrentDemandRes (median of repeated runs).  Prints figures; asserts nothing.

    .venv/bin/python bench/session.py [--repeat 7] [--number 2000]

The session is brought to the DC charging loop by the EV simulator (DC, EIM), then the
same CurrentDemandReq stream is handled over and over.  Target: under 100 µs.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import sys
import timeit
from typing import Any

from secc import codec
from secc.core.actions import SendResponse
from secc.core.config import SessionConfig
from secc.core.context import State
from secc.core.events import RequestReceived, Schema
from secc.core.session import SeccSession
from secc.testing.ev import EvScript, EvSimulator
from secc.testing.harness import run_session


def charging_session() -> tuple[SeccSession, bytes]:
    """A session in the CurrentDemand loop, and one CurrentDemandReq as EXI."""
    found: list[SeccSession] = []

    def keep(session: SeccSession, event: Any, actions: Any) -> None:
        in_loop = (
            isinstance(event, RequestReceived)
            and event.schema is Schema.ISO2
            and type(event.message.body.body_element).__name__ == "CurrentDemandReq"
            and session.state is State.DC_CHARGING
        )
        if in_loop and not found:
            found.append(copy.deepcopy(session))

    run_session(SessionConfig(), EvScript(energy_mode="DC_extended"), check=keep)
    session = found[0]
    ev = EvSimulator(EvScript(energy_mode="DC_extended"))
    ev.session_id = session.session_id
    out = ev.request("CurrentDemandReq")
    return session, codec.encode(out.message)


def main() -> int:
    parser = argparse.ArgumentParser(prog="bench/session.py", description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--number", type=int, default=2000)
    args = parser.parse_args()
    session, data = charging_session()
    assert session.deadline is not None
    now = session.deadline - session.config.timers.sequence_timeout + 0.1

    def decode() -> Any:
        return codec.decode(data, "iso2")

    msg = decode()

    def core() -> list[Any]:
        return session.handle(RequestReceived(msg, Schema.ISO2), now)

    actions = core()
    response = next(a for a in actions if isinstance(a, SendResponse)).message
    assert response.body.body_element.response_code.value == "OK", response

    def encode() -> bytes:
        return codec.encode(response)

    def whole() -> bytes:
        acts = session.handle(RequestReceived(codec.decode(data, "iso2"), Schema.ISO2), now)
        res = next(a for a in acts if isinstance(a, SendResponse))
        return codec.encode(res.message)

    print(f"python {platform.python_version()} on {platform.machine()}")
    print(f"CurrentDemandReq {len(data)} bytes, CurrentDemandRes {len(encode())} bytes")
    for label, fn in (("decode", decode), ("core", core), ("encode", encode), ("total", whole)):
        runs = timeit.repeat(fn, repeat=args.repeat, number=args.number)
        us = statistics.median(runs) / args.number * 1e6
        print(f"{label:>8}: {us:8.1f} µs")
    assert session.state is State.DC_CHARGING
    return 0


if __name__ == "__main__":
    sys.exit(main())
