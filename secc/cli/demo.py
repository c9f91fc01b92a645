"""``secc demo``: a simulated station and EV charging end to end on this machine.

Unprivileged, over loopback: a test PKI is generated into a temporary directory and
installed into a certificate store; a station with three EVSEs starts on ``::1`` (EVSE 1:
ISO 15118-2 AC over TLS 1.2 with Plug & Charge, EVSE 2: ISO 15118-2 DC over plain TCP
with EIM, EVSE 3: ISO 15118-20 DC over TLS 1.3 with EIM and dynamic control, EVSE 4:
ISO 15118-20 DC_BPT with Plug & Charge over mutual TLS 1.3 and a metering confirmation,
charging then discharging), each on the simulated HAL board; the built-in EV plugs in
(CP B), waits for the 5 % duty, finds the station by SDP and charges; the timeline of
every exchange is printed, then where the session traces are and a summary with the
energy each way.  Exit 0 when every session ran to a normal end.

``--tls-keylog FILE`` has the station append the TLS secrets of every session to FILE
(created 0600), ``--pcap FILE`` writes the V2G connections as they went over the wire
(TLS encrypted; see :mod:`secc.cli._capture`): together, Wireshark shows the sessions
decrypted (docs/lab.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from certs import testpki
from hal.backends.simulated import Plant, build_board
from hal.types import CpState, Duty
from secc.aio.ev_client import EvError, EvResult, discover, make_ev, run_ev, run_ev_sdp
from secc.aio.keylog import KeylogError, prepare_keylog
from secc.cli._capture import Capture
from secc.cli._help import summary
from secc.cli.ev import HEADER, format_step, load_credentials, script20_for, script_for
from secc.config import CertsSection, EvseSection, HalSection, StationConfig, StationSection
from secc.core.actions import EndReason
from secc.core.config import DcLimits
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
from secc.ev.pnc20 import Ev20Credentials, load_credentials20
from secc.runtime import Evse, Station
from secc.sdp import SdpResponse, Security

BPT_DC = DcLimits(
    max_voltage=500,
    max_current=125,
    max_power=50_000,
    max_discharge_current=30,
    max_discharge_power=12_000,
)


def demo_config(
    directory: Path, evse_ids: tuple[str, ...], keylog: Path | None = None
) -> StationConfig:
    hal = HalSection(backend="simulated", control="iec61851")
    return StationConfig(
        station=StationSection(name="secc-demo", trace_dir=directory / "traces", tls_keylog=keylog),
        certs=CertsSection(store=directory / "pki" / "station"),
        evse=(
            EvseSection(
                evse_id=evse_ids[0],
                address="::1",
                tls_port=0,
                tcp_port=-1,
                sdp_port=0,
                energy_modes=("AC_three_phase_core",),
                hal=hal,
            ),
            EvseSection(
                evse_id=evse_ids[1],
                address="::1",
                tls_port=-1,
                tcp_port=0,
                sdp_port=0,
                energy_modes=("DC_extended",),
                dc=DcLimits(max_voltage=500, max_current=125, max_power=50_000),
                hal=hal,
            ),
            EvseSection(
                evse_id=evse_ids[2],
                address="::1",
                tls_port=0,
                tcp_port=-1,
                sdp_port=0,
                energy_modes=("DC_extended",),
                protocols=("iso20-dc",),
                dc=DcLimits(max_voltage=500, max_current=125, max_power=50_000),
                hal=hal,
            ),
            EvseSection(
                evse_id=evse_ids[3],
                address="::1",
                tls_port=0,
                tcp_port=-1,
                sdp_port=0,
                energy_modes=("DC_extended",),
                protocols=("iso20-dc",),
                dc=BPT_DC,
                bpt=True,
                metering_confirmation=True,
                certificate_installation=False,  # no CSMS in the demo
                hal=hal,
            ),
        ),
    )


# how long the demo waits for the simulated station (the 5 % duty, CP C, the session's
# end): a few ms on an idle machine, generous for a loaded one; a timeout names its wait
STEP_WAIT = 30.0


class DemoError(Exception):
    """The simulated station did not reach a step of the demo in time."""


async def _wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not predicate():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise DemoError(f"no {what} within {timeout:g} s") from None


async def _physics(plants: list[Plant]) -> None:
    """The simulated world's clock: meters integrate while energy flows."""
    last = time.monotonic()
    while True:
        await asyncio.sleep(0.05)
        now = time.monotonic()
        for plant in plants:
            plant.advance(now - last)
        last = now


async def _session(title: str, evse: Evse, plant: Plant, **options: Any) -> bool:
    """One EV session at ``evse`` (:func:`_run_session`); a step the simulated station
    did not reach in time is a FAILED session with its reason, not a traceback."""
    try:
        return await _run_session(title, evse, plant, **options)
    except DemoError as exc:
        print(f"  demo: {exc}", flush=True)
        summary: list[str] = options["summary"]
        summary.append(f"  {title:<46} EVSE {evse.evse_id}  FAILED: {exc}")
        return False


async def _run_session(
    title: str,
    evse: Evse,
    plant: Plant,
    *,
    mode: str,
    payment: str,
    security: Security,
    pki_dir: Path,
    out: list[str],
    summary: list[str],
    iso20_control: str | None = None,
    bpt: bool = False,
    capture: Capture | None = None,
) -> bool:
    def say(line: str) -> None:
        print(line, flush=True)

    say(f"\n== {title}: EVSE {evse.evse_id} ==")
    t0 = time.monotonic()
    plant.ev_state = CpState.B
    say("  EV plugged in: CP state B")
    await _wait_for(lambda: plant.duty == Duty.hlc(), STEP_WAIT, "5 % duty")
    say(f"  station: 5 % duty (high-level communication), SLAC matched in {_ms(t0)}")
    plant.ev_state = CpState.C
    runner = evse.runner
    await _wait_for(lambda: runner is None or runner.control.cp is CpState.C, STEP_WAIT, "CP C")
    say("  EV: CP state C (ready to charge)")
    creds = load_credentials(pki_dir, dt.datetime.now(dt.UTC)) if payment == "pnc" else None
    script: EvScript | Ev20Script = script_for(mode, payment, credentials=creds)
    root = pki_dir / "v2g" / "root.pem"
    if creds is not None:
        say(f"  EV: Plug & Charge with contract {creds.emaid}, trusting {root}")
    creds20: Ev20Credentials | None = None
    vehicle: tuple[Path, Path] | None = None
    if iso20_control is not None:
        script = replace(
            script20_for(mode, iso20_control),
            payment=payment,
            bpt=bpt,
            discharge_loops=5 if bpt else 0,
        )
        root = pki_dir / "v2g20" / "root.pem"
        say(f"  EV: ISO 15118-20 {mode.upper()}, {iso20_control} control, trusting {root}")
        if payment == "pnc":
            creds20 = load_credentials20(pki_dir)
            vehicle = (pki_dir / "oem20" / "vehicle_chain.pem", pki_dir / "oem20" / "vehicle.key")
            say(f"  EV: Plug & Charge, contract {creds20.emaid}, vehicle chain {vehicle[0]}")
        if bpt:
            say("  EV: bidirectional (DC_BPT): 5 loops charging, then 5 discharging")
    assert evse.sdp is not None

    def on_sdp(a: SdpResponse) -> None:
        say(f"  SDP: {a.security.name} offered at [{a.address}]:{a.port}")
        if capture is not None:
            say(f"  capture: the EV connects through a relay that writes {capture.pcap.path}")
        say(HEADER)

    try:
        result = await _run_ev(
            script,
            capture,
            security=security,
            address=evse.section.address,
            sdp_port=evse.sdp.port,
            cafile=root,
            client_cert=vehicle,
            credentials=creds20,
            on_step=lambda step: say(format_step(step)),
            on_sdp=on_sdp,
        )
    except EvError as exc:
        say(f"  EV failed: {exc}")
        summary.append(f"  {title:<46} EVSE {evse.evse_id}  FAILED: {exc}")
        return False
    tls = f"{(result.tls_version or 'TLS').replace('v', ' ')} {result.cipher}"
    say(f"  EV: {result.ended}, over {tls if result.tls else 'TCP'}")
    if result.outstanding:
        say(f"  EV: outstanding: {result.outstanding}")
    await _wait_for(lambda: evse.active is None, STEP_WAIT, "session end")
    ended = evse.ended[-1].end if evse.ended else None
    reason = f"{ended.reason.value} {ended.detail}".strip() if ended else "?"
    plant.ev_state = CpState.A
    say(f"  session ended: {reason}; contactors {'closed' if plant.contactor_command else 'open'}")
    note = _outstanding(evse.ended[-1].trace) if evse.ended else ""
    if note:
        say(f"  station: outstanding: {note}")
    energy = f"{plant.energy_wh:.1f} Wh"
    if bpt:
        energy = f"{plant.energy_wh:.1f} Wh to the EV, {plant.energy_export_wh:.1f} Wh back"
    say(f"  energy {energy}; EV unplugged: CP state A")
    out.extend(str(p) for p in evse.trace_files)
    ok = ended is not None and ended.reason is EndReason.EV_STOP and result.ended == "done"
    if bpt and not (plant.energy_wh > 0 and plant.energy_export_wh > 0):
        ok = False  # a bidirectional session must move energy both ways
    summary.append(
        f"  {title:<46} EVSE {evse.evse_id}  {'ok' if ok else 'FAILED'}: {reason}, "
        f"{len(result.steps)} exchanges, {energy}"
    )
    return ok


async def _run_ev(
    script: EvScript | Ev20Script,
    capture: Capture | None,
    *,
    security: Security,
    address: str,
    sdp_port: int,
    on_sdp: Callable[[SdpResponse], None],
    **options: Any,
) -> EvResult:
    """SDP, then the session: straight to the station, or (``capture``) through a relay
    in front of the port the station offered, which writes the connection to the pcap."""
    if capture is None:
        return await run_ev_sdp(
            script, security=security, address=address, sdp_port=sdp_port, on_sdp=on_sdp, **options
        )
    answer = await discover(security, address=address, port=sdp_port)
    on_sdp(answer)
    host = str(answer.address)
    port = await capture.relay(host, answer.port)
    result = EvResult(make_ev(script, options.get("credentials"), None), sdp=answer)
    return await run_ev(
        script,
        host=host,
        port=port,
        tls=answer.security is Security.TLS,
        result=result,
        **options,
    )


def _outstanding(trace: Path | None) -> str:
    """What the station's session waited for when a timer ended it (its trace's end
    record names the last request and response; secc.aio.driver)."""
    if trace is None:
        return ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        end = json.loads(trace.read_text().splitlines()[-1])
        return str(end.get("outstanding", "")) if end.get("kind") == "end" else ""
    return ""


def _ms(t0: float) -> str:
    return f"{(time.monotonic() - t0) * 1000:.0f} ms"


async def demo(
    directory: Path, *, keylog: Path | None = None, capture: Capture | None = None
) -> int:
    start = time.monotonic()
    print(f"secc demo: test PKI, station and EV in {directory}", flush=True)
    pki = testpki.build_test_pki(dt.datetime.now(dt.UTC))
    testpki.write_test_pki(pki, directory / "pki")
    evse_ids = (pki.options.evse_id, *(pki.options.evse_id[:-1] + str(n) for n in (2, 3, 4)))
    config = demo_config(directory, evse_ids, keylog)
    (board_ac, plant_ac), (board_dc, plant_dc) = build_board(), build_board()
    (board_20, plant_20), (board_bpt, plant_bpt) = build_board(), build_board()
    boards = (board_ac, board_dc, board_20, board_bpt)
    station = Station(config, boards=dict(zip(evse_ids, boards, strict=True)))
    await station.start()
    print(f"station ready in {_ms(start)} (PKI generated and installed included)", flush=True)
    physics = asyncio.create_task(_physics([plant_ac, plant_dc, plant_20, plant_bpt]))
    traces: list[str] = []
    summary: list[str] = []
    try:
        ok_ac = await _session(
            "ISO 15118-2: AC, Plug & Charge, TLS 1.2",
            station.evse(evse_ids[0]),
            plant_ac,
            mode="ac",
            payment="pnc",
            security=Security.TLS,
            pki_dir=directory / "pki",
            out=traces,
            summary=summary,
            capture=capture,
        )
        ok_dc = await _session(
            "ISO 15118-2: DC, EIM, TCP",
            station.evse(evse_ids[1]),
            plant_dc,
            mode="dc",
            payment="eim",
            security=Security.NONE,
            pki_dir=directory / "pki",
            out=traces,
            summary=summary,
            capture=capture,
        )
        ok_20 = await _session(
            "ISO 15118-20: DC, EIM, TLS 1.3",
            station.evse(evse_ids[2]),
            plant_20,
            mode="dc",
            payment="eim",
            security=Security.TLS,
            pki_dir=directory / "pki",
            out=traces,
            summary=summary,
            iso20_control="dynamic",
            capture=capture,
        )
        ok_bpt = await _session(
            "ISO 15118-20: DC_BPT, Plug & Charge, mTLS 1.3",
            station.evse(evse_ids[3]),
            plant_bpt,
            mode="dc",
            payment="pnc",
            security=Security.TLS,
            pki_dir=directory / "pki",
            out=traces,
            summary=summary,
            iso20_control="scheduled",
            bpt=True,
            capture=capture,
        )
    finally:
        physics.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await physics
        await station.aclose()
        if capture is not None:
            await capture.aclose()
    print("\ntraces (JSON Lines; `secc replay FILE` feeds one back through the core):")
    for path in traces:
        print(f"  {path}")
    if capture is not None or keylog is not None:
        _print_wireshark(station, capture, keylog)
    print("\nsummary:")
    for line in summary:
        print(line)
    ok = ok_ac and ok_dc and ok_20 and ok_bpt
    print(f"\n{'all 4 sessions charged and ended normally' if ok else 'a session FAILED'}")
    return 0 if ok else 1


def _print_wireshark(station: Station, capture: Capture | None, keylog: Path | None) -> None:
    tls_ports = sorted({e.ports["tls"] for e in station.evses if "tls" in e.ports})
    print("\nWireshark (docs/lab.md):")
    if capture is not None:
        print(f"  pcap: {capture.pcap.path} ({capture.connections} V2G connections, as sent)")
    if keylog is not None:
        print(f"  TLS key log: {keylog} (mode 0600; TLS 1.2 and TLS 1.3 sessions)")
        print("    Preferences > Protocols > TLS > (Pre)-Master-Secret log filename")
    ports = ", ".join(map(str, tls_ports))
    print(f"  Decode As: TCP port {ports} as TLS; V2GTP/EXI on top: the dsV2Gshark plugin")


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=summary(__doc__))
    parser.add_argument(
        "--dir", type=Path, help="work directory (default: a new temp dir, kept afterwards)"
    )
    parser.add_argument(
        "--clean", action="store_true", help="remove the work directory after (default: keep it)"
    )
    parser.add_argument(
        "--pcap",
        type=Path,
        metavar="FILE",
        help="write the V2G connections as they went over the wire (TLS encrypted) to this "
        "pcap (default: none)",
    )
    parser.add_argument(
        "--tls-keylog",
        type=Path,
        metavar="FILE",
        help="append the TLS secrets of every session to FILE, created 0600, for Wireshark "
        "(default: none; lab only)",
    )
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="station logs on stderr (default: errors)"
    )
    args = parser.parse_args(argv)
    capture: Capture | None = None
    try:
        if args.tls_keylog is not None:
            prepare_keylog(args.tls_keylog)
        if args.pcap is not None:
            capture = Capture(args.pcap)
    except KeylogError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"{prog}: error: cannot write the pcap {args.pcap}: {exc.strerror}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.ERROR,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    directory = args.dir or Path(tempfile.mkdtemp(prefix="secc-demo-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        return asyncio.run(demo(directory, keylog=args.tls_keylog, capture=capture))
    finally:
        if capture is not None:
            capture.pcap.close()
        if args.clean:
            shutil.rmtree(directory, ignore_errors=True)
