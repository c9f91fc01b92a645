"""Checks of the machine and the hardware: config, clock, HAL self-test, network and SDP."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools

from hal.api import ControlPilot
from hal.types import (
    ContactorState,
    ContactorStuckError,
    ContactorWeldedError,
    CpState,
    Duty,
    HalError,
    LockState,
)
from secc import preflight
from secc.commission.context import Context
from secc.commission.model import Check, Result
from secc.config import EvseSection
from secc.sdp import SDP_PORT, SdpOffer, SdpResponder

CLOCK_FLOOR = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
MAX_SKEW = dt.timedelta(minutes=5)
CLOCK_FIX = (
    "set the clock from NTP: `timedatectl set-ntp true` (systemd-timesyncd) or configure "
    "chrony, and make sure the NTP server is reachable from the station; TLS, certificate "
    "validity and OCSP all depend on the time"
)


async def check_config(ctx: Context) -> Result:
    if ctx.config is None:
        return Result.fail(
            ctx.config_error or "no configuration",
            f"correct {ctx.config_path} (docs/config.md lists every key), then run again",
        )
    cfg = ctx.config
    notes = [f"{len(cfg.evse)} EVSE(s)"]
    if ctx.store_error:
        return Result.fail(
            f"certificate store: {ctx.store_error}",
            "create the store (`secc certs install --store DIR ...`) or fix certs.store",
        )
    if cfg.ocpp is not None:
        notes.append(f"CSMS {cfg.ocpp.url} as {cfg.ocpp.station_id}")
    return Result.ok("; ".join(notes), digest=ctx.config_digest)


async def check_startup(ctx: Context) -> Result:
    """What ``secc run`` checks before it starts (secc.preflight, the same code and the
    same lines as ``secc run`` and ``secc run --check``)."""
    assert ctx.config is not None
    user = ctx.service_user()
    problems = preflight.check_station(ctx.config, user=user)
    who = f"user {user.name}" if user is not None else "this user"
    if not problems:
        return Result.ok(
            "interfaces and addresses, free ports, HAL devices, certificate store, keys and "
            f"files as {who}: `secc run` will start",
            user=user.name if user is not None else "",
        )
    source = str(ctx.config_path)
    fixes = dict.fromkeys(p.fix for p in problems if p.fix)
    return Result.fail(
        "; ".join(p.line(source) for p in problems),
        "; ".join(fixes)
        or "correct the configuration or the machine; `secc run --check` makes the same checks",
    )


def _span(delta: dt.timedelta) -> str:
    seconds = abs(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.0f} days"
    return f"{seconds:.0f} s"


async def check_clock(ctx: Context) -> Result:
    now = ctx.utc_now()
    sync = ctx.deps.clock_sync()
    problems: list[str] = []
    details: dict[str, object] = {"utc": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "sync": sync.source}
    if now < CLOCK_FLOOR:
        problems.append(f"the clock reads {now:%Y-%m-%d}, before {CLOCK_FLOOR:%Y-%m-%d}")
    if ctx.store is not None:
        certificates = ctx.store.all_certificates()
        if certificates:
            label, newest = max(certificates, key=lambda lc: lc[1].not_valid_before_utc)
            if now < newest.not_valid_before_utc - dt.timedelta(days=1):
                problems.append(
                    f"the clock ({now:%Y-%m-%d}) is before the issuance of {label} "
                    f"({newest.not_valid_before_utc:%Y-%m-%d})"
                )
    link = await ctx.link()
    if link is not None and link.csms_time is not None:
        skew = now - link.csms_time
        details["csms_skew_s"] = round(skew.total_seconds(), 1)
        if abs(skew) > MAX_SKEW:
            direction = "ahead of" if skew > dt.timedelta(0) else "behind"
            problems.append(f"the clock is {_span(skew)} {direction} the CSMS's")
    if sync.synchronized is False:
        problems.append(f"the clock is not synchronised ({sync.source})")
    if problems:
        return Result.fail("; ".join(problems), CLOCK_FIX, **details)
    if sync.synchronized is None:
        return Result.warn(
            f"cannot tell whether the clock is synchronised ({sync.source})",
            "enable systemd-timesyncd or chrony so that synchronisation can be checked",
            **details,
        )
    return Result.ok(f"synchronised ({sync.source}), {now:%Y-%m-%d %H:%M:%S} UTC", **details)


async def check_hal(ctx: Context, evse: EvseSection) -> Result:
    backend = evse.hal.backend
    try:
        board = await ctx.board(evse)
    except HalError as exc:
        return Result.fail(
            f"board {backend!r} cannot be opened: {exc}",
            "check [evse.hal] backend and options, the cabling to the board, and "
            "`secc hal backends` for missing extras",
        )
    firmware = getattr(board, "firmware_version", None)
    ctx.firmware[f"{evse.evse_id} board ({backend})"] = (
        str(firmware) if firmware else "not reported by the backend"
    )
    done: list[str] = [f"board firmware {firmware}"] if firmware else []
    try:
        cp = board.control_pilot
        state = await cp.read_state()
        if state is not CpState.A:
            return Result.fail(
                f"control pilot reads state {state.value}, expected A (+12 V, no vehicle)",
                "unplug any vehicle; check the CP wiring and the +12 V / 1 kΩ generator",
            )
        done.append("CP state A")
        for duty in (Duty.hlc(), Duty.for_current(16)):
            await cp.set_duty(duty)
            got = await _read_back(cp, duty)
            if got != duty:
                await cp.set_duty(Duty.constant())
                return Result.fail(
                    f"PWM set to {duty}, the board reports {got}",
                    "check the PWM generator (MCU firmware, sysfs PWM channel and period)",
                )
        await cp.set_duty(Duty.constant())
        done.append("PWM 5 % and 16 A read back")
        if board.rcd is not None:
            status = await board.rcd.read()
            if status.tripped:
                return Result.fail(
                    f"the RCD monitor reads tripped ({status.residual_ma:g} mA)",
                    "find the residual current, then reset the RCD",
                )
            if not await board.rcd.self_test(timeout=2.0):
                return Result.fail(
                    "the RCD monitor's self-test failed", "replace or rewire the RCD monitor"
                )
            done.append("RCD self-test")
        if ctx.answers.hal_self_test:
            await board.contactors.close(timeout=2.0)
            if await board.contactors.feedback() is not ContactorState.CLOSED:
                raise ContactorStuckError("feedback not CLOSED after close")
            await board.contactors.open(timeout=2.0)
            if await board.contactors.feedback() is not ContactorState.OPEN:
                raise ContactorWeldedError("feedback not OPEN after open")
            done.append("contactors close/open with feedback")
            if board.lock is not None:
                await board.lock.lock(timeout=2.0)
                if await board.lock.state() is not LockState.LOCKED:
                    raise HalError("cable lock: feedback not LOCKED after lock")
                await board.lock.unlock(timeout=2.0)
                done.append("cable lock")
    except ContactorStuckError as exc:
        return Result.fail(
            f"contactor feedback stays OPEN after close ({exc})",
            "check the contactor's auxiliary (feedback) contact wiring and the coil supply; "
            "replace a contactor that does not pull in",
        )
    except ContactorWeldedError as exc:
        return Result.fail(
            f"contactor feedback stays CLOSED after open: welded contacts? ({exc})",
            "de-energise the station and replace the contactor before any use",
        )
    except HalError as exc:
        return Result.fail(
            f"{type(exc).__name__}: {exc}", "check the board wiring and its firmware"
        )
    plc = await _plc(ctx, evse, board)
    if isinstance(plc, Result):
        return plc
    done.append(plc)
    warn = None if board.rcd is not None else "no RCD monitor on this board"
    if warn:
        return Result.warn(
            "; ".join(done) + f"; {warn}",
            "confirm that the installation provides residual current protection "
            "(RDC-DD 6 mA DC per IEC 61851-1)",
        )
    return Result.ok("; ".join(done))


async def _read_back(cp: ControlPilot, duty: Duty, timeout: float = 1.0) -> Duty | None:
    """The duty the board reports, polled until it matches (an MCU reports it with its
    next STATUS) or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        got = await cp.duty()
        if got == duty or loop.time() >= deadline:
            return got
        await asyncio.sleep(0.02)


async def _plc(ctx: Context, evse: EvseSection, board: object) -> str | Result:
    if evse.hal.plc == "slac" and evse.interface:
        try:
            firmware = await ctx.deps.probe_modem(evse.interface)
        except (OSError, HalError) as exc:
            return Result.fail(
                f"PLC modem on {evse.interface} cannot be probed: {exc}",
                "run as root or with CAP_NET_RAW; check the interface name",
            )
        if firmware is None:
            return Result.fail(
                f"the PLC modem on {evse.interface} did not answer",
                f"check the modem's power and its SPI/Ethernet link; `secc hal probe "
                f"{evse.interface}`",
            )
        ctx.firmware[f"{evse.evse_id} PLC modem"] = firmware
        return f"PLC modem firmware {firmware}"
    if getattr(board, "plc", None) is None:
        return Result.fail(
            "no PLC link: the board has none and hal.plc is not set",
            'set plc = "slac" in [evse.hal] and the PLC interface in [[evse]]',
        )
    ctx.firmware.setdefault(f"{evse.evse_id} PLC modem", "the board's own PLC link")
    return "PLC link present"


async def check_network(ctx: Context, evse: EvseSection) -> Result:
    name = evse.interface
    if name is None:
        return Result.warn(
            "no PLC interface configured: loopback / test mode",
            'set interface = "eth1" (the PLC modem\'s interface) in [[evse]]',
        )
    info = ctx.deps.interface_info(name)
    if not info.exists:
        return Result.fail(
            f"interface {name} does not exist",
            "check the PLC modem's driver (qcaspi, USB) and the interface name in the config",
        )
    if not info.up:
        return Result.fail(
            f"interface {name} is down ({info.operstate or 'no state'})",
            f"`ip link set {name} up`, and bring it up at boot (systemd-networkd, ifupdown)",
        )
    if not info.link_local:
        return Result.fail(
            f"interface {name} has no IPv6 link-local address",
            f"enable IPv6 on {name}: sysctl net.ipv6.conf.{name}.disable_ipv6=0",
        )
    address = info.link_local[0]
    if not ctx.answers.sdp_probe:
        return Result.ok(f"{name} up, {address}", mac=info.mac)
    port = evse.sdp_port or SDP_PORT
    answer = await ctx.deps.sdp_query(name, port, 1.0)
    if answer is not None:
        return Result.ok(
            f"{name} up, {address}; SDP answered by the running station: "
            f"{answer.security.name} at [{answer.address}]:{answer.port}",
            mac=info.mac,
        )
    if ctx.deps.udp_port_in_use(port):
        return Result.fail(
            f"a program holds UDP {port} on this station but does not answer SDP on {name}",
            f"find it (`ss -ulpn sport = :{port}`); if it is `secc run`, check that its "
            f"[[evse]] interface is {name}",
        )
    from secc.aio.sdp_server import SdpServer

    # bound to the interface and joined to ff02::1 there, as `secc run` does
    offer = SdpOffer(address, tls_port=evse.tls_port if evse.tls_port > 0 else 65535)
    try:
        async with SdpServer(SdpResponder(offer), interface=name, port=port):
            answer = await ctx.deps.sdp_query(name, port, 1.0)
    except OSError as exc:
        return Result.fail(
            f"SDP responder cannot start on {name} port {port}: {exc}",
            "run as the secc user or root; check that nothing else holds UDP 15118",
        )
    if answer is None:
        return Result.fail(
            f"no SDP answer on {name} (UDP {port}, ff02::1)",
            "check the firewall (UDP 15118 and ICMPv6 must pass), multicast on the interface, "
            "and that the loopback interface lo is up",
        )
    return Result.ok(
        f"{name} up, {address}; SDP works on it (answered by a temporary responder: "
        "`secc run` is not running)",
        mac=info.mac,
    )


def station_checks(ctx: Context) -> list[Check]:
    checks = [
        Check("config", "Station configuration valid", check_config),
        Check("start", "secc run start-up checks", check_startup),
        Check("clock", "System clock sane and synchronised", check_clock),
    ]
    for evse in ctx.config.evse if ctx.config else ():
        checks.append(
            Check(
                f"hal[{evse.evse_id}]",
                f"HAL self-test ({evse.evse_id})",
                functools.partial(check_hal, evse=evse),
            )
        )
        checks.append(
            Check(
                f"network[{evse.evse_id}]",
                f"Network and SDP ({evse.evse_id})",
                functools.partial(check_network, evse=evse),
            )
        )
    return checks
