"""Garbage-collection pauses during 1,000 messages of a DC session (CurrentDemandReq decode,
the session core, CurrentDemandRes encode, as bench/session.py), with and without
``gc.freeze()`` of the start-up objects (what ``secc run`` does once it is ready), and the
objects the session left in reference cycles.  Prints figures; asserts nothing.

    .venv/bin/python bench/gc_pause.py [--messages 1000]

Each collection is timed with ``gc.callbacks``.  Target (issue 17): the longest pause
≤ 1 ms here.
"""

from __future__ import annotations

import argparse
import gc
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

TARGET_MS = 1.0


def station_loop() -> Callable[[], Any]:
    """One CurrentDemand round trip as the station does it: decode, core, encode."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import session as bench_session  # bench/session.py

    from secc import codec
    from secc.core.actions import SendResponse
    from secc.core.events import RequestReceived, Schema

    sess, data, schema = bench_session.charging_session(bench_session.CASES[0])  # ISO-2 DC
    assert sess.deadline is not None and schema is Schema.ISO2
    now = sess.deadline - sess.config.timers.sequence_timeout + 0.1

    def whole() -> bytes:
        acts = sess.handle(RequestReceived(codec.decode(data, "iso2"), Schema.ISO2), now)
        res = next(a for a in acts if isinstance(a, SendResponse))
        return codec.encode(res.message)

    return whole


def child(messages: int, freeze: bool) -> None:
    import secc.aio.driver  # what a station has loaded
    import secc.runtime  # noqa: F401
    from secc import codec

    for name in ("apphand", "iso2", "din"):
        codec.schema_module(name)
    whole = station_loop()
    whole()  # warm-up: lazily loaded code paths
    gc.collect()
    if freeze:
        gc.freeze()
    pauses: list[tuple[int, float]] = []
    started: list[float] = []

    def timer(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            pauses.append((info["generation"], time.perf_counter() - started.pop()))

    gc.callbacks.append(timer)
    for _ in range(messages // 2):  # a request and a response each
        whole()
    gc.callbacks.remove(timer)
    # the objects that only a collection frees (reference cycles) per round trip
    gc.disable()
    gc.collect()
    for _ in range(100):
        whole()
    cycles = gc.collect()
    gc.enable()
    t0 = time.perf_counter()
    gc.collect()
    full = time.perf_counter() - t0
    longest = max((p for _, p in pauses), default=0.0)
    by_gen = {g: sum(1 for gen, _ in pauses if gen == g) for g in (0, 1, 2)}
    print(
        f"{'frozen' if freeze else 'not frozen':>10}: {messages} messages, "
        f"{len(pauses)} collections (gen0/1/2: {by_gen[0]}/{by_gen[1]}/{by_gen[2]}), "
        f"longest pause {longest * 1e3:.2f} ms (target ≤ {TARGET_MS} ms); "
        f"frozen objects {gc.get_freeze_count()}; "
        f"a full collection {full * 1e3:.1f} ms; "
        f"objects left in cycles by 100 round trips: {cycles}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1] == "freeze")
        return 0
    print(f"python {platform.python_version()} on {platform.machine()}")
    for mode in ("nofreeze", "freeze"):
        subprocess.run([sys.executable, __file__, "--child", str(args.messages), mode], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
