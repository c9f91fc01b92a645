"""The -20 EV over real sockets on loopback (``secc.aio.ev_client`` and ``secc ev
--protocol iso20``) against the scripted SECC of tests/ev/spec_secc.py behind a small
V2GTP server: TCP and TLS 1.3 with the -20 test PKI (P-521 SECC chain), the payload type
of every frame, and a TLS 1.2-only server refused."""

from __future__ import annotations

import asyncio
import shutil
import ssl
import stat
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import pytest

from secc import codec
from secc.aio.ev_client import EvError, EvResult, run_ev
from secc.cli.ev import main as ev_main
from secc.cli.ev import script20_for
from secc.core.events import Schema
from secc.v2gtp import Framer, PayloadType, encode_frame
from tests.ev.spec_secc import SpecSecc

TYPES = {
    Schema.APPHAND: PayloadType.EXI,
    Schema.ISO20_COMMON: PayloadType.ISO20_COMMON,
    Schema.ISO20_AC: PayloadType.ISO20_AC,
    Schema.ISO20_DC: PayloadType.ISO20_DC,
}
SCHEMAS = {int(t): s for s, t in TYPES.items()}
T = TypeVar("T")


def server_context(pki_dir: Path, version: ssl.TLSVersion) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ctx.maximum_version = version
    ctx.load_cert_chain(pki_dir / "v2g20" / "secc_chain.pem", pki_dir / "v2g20" / "secc.key")
    return ctx


@asynccontextmanager
async def spec_server(
    secc: SpecSecc,
    frames: list[int],
    tls: ssl.SSLContext | None = None,
    peer: list[Any] | None = None,
) -> AsyncIterator[int]:
    """A V2GTP server on [::1] answering with ``secc``; ``frames`` gets each request's
    payload type, ``peer`` the client certificate each TLS connection showed.  Yields the
    port."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if peer is not None:
            peer.append(writer.get_extra_info("peercert"))
        framer = Framer(allowed_types=[int(t) for t in TYPES.values()])
        try:
            while data := await reader.read(65536):
                for frame in framer.feed(data):
                    frames.append(frame.payload_type)
                    schema = SCHEMAS[frame.payload_type]
                    req = codec.decode(frame.payload, schema.value)
                    res, out_schema = secc.answer(req, schema)
                    writer.write(encode_frame(codec.encode(res), TYPES[out_schema]))
                    await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "::1", 0, ssl=tls)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(60):
            return await coro

    return asyncio.run(bounded())


@pytest.mark.parametrize(("mode", "control"), [("dc", "scheduled"), ("ac", "dynamic")])
def test_tcp_session_frames_each_schema_with_its_payload_type(mode: str, control: str) -> None:
    secc, frames = SpecSecc(), list[int]()

    async def main() -> EvResult:
        async with spec_server(secc, frames) as port:
            return await run_ev(
                script20_for(mode, control, loops=3), host="::1", port=port, tls=False
            )

    result = run(main())
    assert result.ended == "done", result.ended
    assert result.steps[-1].response == "SessionStopRes"
    sent = list(zip(secc.seen, frames, strict=True))
    assert sent[0] == ("supportedAppProtocolReq", PayloadType.EXI)
    for name, ptype in sent[1:]:
        prefix = name[:3]
        want = {"DC_": PayloadType.ISO20_DC, "AC_": PayloadType.ISO20_AC}.get(
            prefix, PayloadType.ISO20_COMMON
        )
        assert ptype == want, (name, hex(ptype))
    assert f"{mode.upper()}_ChargeLoopReq" in secc.seen


def test_tls13_session_checks_the_iso20_chain(pki_dir: Path) -> None:
    secc, frames = SpecSecc(), list[int]()

    async def main() -> EvResult:
        ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_3)
        async with spec_server(secc, frames, ctx) as port:
            return await run_ev(
                script20_for("dc", "dynamic", loops=2),
                host="::1",
                port=port,
                tls=True,
                cafile=pki_dir / "v2g20" / "root.pem",
            )

    result = run(main())
    assert result.ended == "done", result.ended
    assert result.tls_version == "TLSv1.3"


def test_tls13_refuses_a_chain_from_another_root(pki_dir: Path) -> None:
    async def main() -> None:
        ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_3)
        async with spec_server(SpecSecc(), [], ctx) as port:
            with pytest.raises(EvError, match="cannot connect"):
                await run_ev(
                    script20_for("dc", "scheduled"),
                    host="::1",
                    port=port,
                    tls=True,
                    cafile=pki_dir / "v2g" / "root.pem",  # the -2 root does not anchor it
                )

    run(main())


def test_iso20_client_refuses_tls12(pki_dir: Path) -> None:
    async def main() -> None:
        ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_2)
        async with spec_server(SpecSecc(), [], ctx) as port:
            with pytest.raises(EvError, match="cannot connect"):
                await run_ev(
                    script20_for("dc", "scheduled"),
                    host="::1",
                    port=port,
                    tls=True,
                    cafile=pki_dir / "v2g20" / "root.pem",
                )

    run(main())


def test_station_that_never_precharges_ends_the_ev_with_the_reason() -> None:
    secc = SpecSecc(precharge_ceiling=200.0)

    async def main() -> EvResult:
        async with spec_server(secc, []) as port:
            script = replace(script20_for("dc", "scheduled"), precharge_timeout=1.0)
            return await run_ev(script, host="::1", port=port, tls=False)

    result = run(main())
    assert result.ended == (
        "EV gave up: PreCharge not finished within 1 s: the EV gives up "
        "(the EVSE reports 200 V, the EV asked 400 V)"
    )


@pytest.mark.parametrize("control", ["scheduled", "dynamic"])
def test_secc_ev_cli_iso20(pki_dir: Path, control: str, capsys: pytest.CaptureFixture[str]) -> None:
    secc = SpecSecc()

    async def main() -> int:
        ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_3)
        async with spec_server(secc, [], ctx) as port:
            argv = ["--protocol", "iso20", "--mode", "ac", "--control", control]
            argv += [
                "--address",
                "::1",
                "--msg-timeout",
                "10",
                "--port",
                str(port),
                "--pki",
                str(pki_dir),
            ]
            argv += ["--loops", "2"]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    assert run(main()) == 0
    out = capsys.readouterr().out
    assert "AC_ChargeLoopRes" in out and "SessionStopRes" in out
    assert "EV: done (TLSv1.3 " in out


def test_secc_ev_cli_charges_until_the_energy(capsys: pytest.CaptureFixture[str]) -> None:
    secc = SpecSecc(energy_per_loop=100)

    async def main() -> int:
        async with spec_server(secc, []) as port:
            argv = ["--protocol", "iso20", "--mode", "dc", "--tcp", "--energy", "250"]
            argv += [
                "--address",
                "::1",
                "--msg-timeout",
                "10",
                "--port",
                str(port),
                "--loops",
                "99",
            ]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    assert run(main()) == 0
    out = capsys.readouterr().out
    assert out.count("DC_ChargeLoopRes") == 3  # 100, 200, 300 Wh
    assert "300 Wh" in out and "EV: done (TCP)" in out


def test_secc_ev_cli_energy_is_for_iso20_only() -> None:
    with pytest.raises(SystemExit):
        ev_main(["--address", "::1", "--energy", "100"], "secc ev")


def test_secc_ev_cli_iso20_pnc_needs_its_material(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ev_main(["--address", "::1", "--protocol", "iso20", "--payment", "pnc"], "secc ev")
    assert "--payment pnc needs --pki" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        ev_main(["--address", "::1", "--bpt"], "secc ev")
    assert "need --protocol iso20" in capsys.readouterr().err


def mutual_context(pki_dir: Path) -> ssl.SSLContext:
    """A -20 server that requires the vehicle certificate (from the -20 OEM root)."""
    ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_3)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(pki_dir / "oem20" / "root.pem")
    return ctx


@pytest.mark.parametrize("mode", ["ac", "dc"])
def test_secc_ev_cli_iso20_pnc_over_mutual_tls(
    pki_dir: Path, mode: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """``secc ev --protocol iso20 --payment pnc --pki DIR``: mutual TLS 1.3 with the test
    PKI's vehicle chain, the contract signature checked by the standard's rules, a
    metering confirmation asked in the second loop."""
    secc = SpecSecc(pnc=True, metering_at_loop=2)
    peer: list[Any] = []

    async def main() -> int:
        ctx = mutual_context(pki_dir)
        async with spec_server(secc, [], ctx, peer) as port:
            argv = ["--protocol", "iso20", "--mode", mode, "--payment", "pnc"]
            argv += [
                "--address",
                "::1",
                "--msg-timeout",
                "10",
                "--port",
                str(port),
                "--pki",
                str(pki_dir),
            ]
            argv += ["--loops", "3"]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    code = run(main())
    out = capsys.readouterr().out
    assert code == 0, out
    assert secc.verdicts == ["OK", "OK", "OK"]  # Authorization x2, MeteringConfirmation
    assert "MeteringConfirmationRes" in out and "EV: done (TLSv1.3 " in out
    vin = "WVWZZZ1JZXW000001"  # the test PKI's vehicle certificate
    assert peer and any(vin in str(v) for rdn in peer[0]["subject"] for v in rdn)


def test_secc_ev_cli_iso20_pnc_with_the_evs_own_files_and_a_key_log(
    pki_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--pki`` on a directory holding only the -20 EV's files (V2G root certificate,
    contract, OEM provisioning and vehicle chains with their keys: no CA key);
    ``--tls-keylog`` writes the TLS 1.3 secrets to a 0600 file."""
    ev_dir = tmp_path / "ev"
    for rel in (
        "v2g20/root.pem",
        "mo20/contract_chain.pem",
        "mo20/contract.key",
        "oem20/prov_chain.pem",
        "oem20/prov.key",
        "oem20/vehicle_chain.pem",
        "oem20/vehicle.key",
    ):
        (ev_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pki_dir / rel, ev_dir / rel)
    keylog = tmp_path / "keys.log"
    secc = SpecSecc(pnc=True)
    peer: list[Any] = []

    async def main() -> int:
        async with spec_server(secc, [], mutual_context(pki_dir), peer) as port:
            argv = ["--protocol", "iso20", "--payment", "pnc", "--loops", "2"]
            argv += ["--address", "::1", "--port", str(port), "--pki", str(ev_dir)]
            argv += ["--tls-keylog", str(keylog), "--msg-timeout", "10"]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    code = run(main())
    out = capsys.readouterr().out
    assert code == 0, out
    assert secc.verdicts == ["OK", "OK"] and peer  # authorized; the vehicle chain presented
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    labels = {line.split()[0] for line in keylog.read_text().splitlines() if line[:1] != "#"}
    assert {"CLIENT_HANDSHAKE_TRAFFIC_SECRET", "CLIENT_TRAFFIC_SECRET_0"} <= labels


def test_secc_ev_cli_iso20_fault_is_refused(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    secc = SpecSecc(pnc=True)

    async def main() -> int:
        async with spec_server(secc, [], mutual_context(pki_dir)) as port:
            argv = ["--protocol", "iso20", "--payment", "pnc", "--fault", "tamper-signature"]
            argv += [
                "--address",
                "::1",
                "--msg-timeout",
                "10",
                "--port",
                str(port),
                "--pki",
                str(pki_dir),
            ]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    assert run(main()) == 1
    assert secc.verdicts == ["FAILED_SignatureError"]
    assert "EV gave up: AuthorizationRes: FAILED_SignatureError" in capsys.readouterr().out


def test_secc_ev_cli_iso20_bpt(capsys: pytest.CaptureFixture[str]) -> None:
    secc = SpecSecc()

    async def main() -> int:
        async with spec_server(secc, []) as port:
            argv = ["--protocol", "iso20", "--mode", "dc", "--tcp", "--bpt"]
            argv += ["--discharge-loops", "2", "--loops", "2"]
            argv += ["--address", "::1", "--msg-timeout", "10", "--port", str(port)]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    assert run(main()) == 0
    out = capsys.readouterr().out
    assert out.count("DC_ChargeLoopRes") == 4
    assert secc.discharged_wh == 2 * secc.energy_per_loop
    assert secc.charged_wh == 2 * secc.energy_per_loop


def test_tls13_presents_the_vehicle_certificate_when_asked(pki_dir: Path) -> None:
    """A station that requires a client certificate (mutual TLS) gets the EV's chain."""
    secc, seen = SpecSecc(), list[int]()

    async def main() -> EvResult:
        ctx = server_context(pki_dir, ssl.TLSVersion.TLSv1_3)
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(pki_dir / "oem" / "root.pem")
        async with spec_server(secc, seen, ctx) as port:
            return await run_ev(
                script20_for("dc", "scheduled", loops=1),
                host="::1",
                port=port,
                tls=True,
                cafile=pki_dir / "v2g20" / "root.pem",
                client_cert=(pki_dir / "oem" / "prov_chain.pem", pki_dir / "oem" / "prov.key"),
            )

    result = run(main())
    assert result.ended == "done", result.ended
    assert secc.seen[-1] == "SessionStopReq"


def test_secc_ev_cli_iso20_pnc_from_explicit_files(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The EV's material by option (no --pki: no root's key, no V2G root either, so the
    SECC chain is not checked): contract, OEM provisioning and vehicle chains and keys."""
    secc = SpecSecc(pnc=True, authorization_ongoing=0)
    peer: list[Any] = []

    async def main() -> int:
        async with spec_server(secc, [], mutual_context(pki_dir), peer) as port:
            argv = ["--protocol", "iso20", "--payment", "pnc", "--loops", "1"]
            argv += ["--address", "::1", "--msg-timeout", "10", "--port", str(port)]
            for opt, rel in (
                ("--contract-chain", "mo20/contract_chain.pem"),
                ("--contract-key", "mo20/contract.key"),
                ("--oem-chain", "oem20/prov_chain.pem"),
                ("--oem-key", "oem20/prov.key"),
                ("--vehicle-chain", "oem20/vehicle_chain.pem"),
                ("--vehicle-key", "oem20/vehicle.key"),
            ):
                argv += [opt, str(pki_dir / rel)]
            return await asyncio.to_thread(ev_main, argv, "secc ev")

    code = run(main())
    assert code == 0, capsys.readouterr().out
    assert secc.verdicts == ["OK"]
    assert peer and peer[0]
