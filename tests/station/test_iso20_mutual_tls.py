"""Mutual TLS 1.3 at a whole station: the vehicle chain the handshake verified reaches
the session (``SessionConfig.vehicle_chain``), one connection at a time; an EV without a
certificate gets an empty one; a -20 OEM root deleted from the store refuses the next
EV's certificate with a TLS alert (the store is read at every handshake)."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path
from typing import Any

from cryptography import x509

from certs._util import fingerprint, load_certificates
from certs.store import Store
from hal.backends.simulated import build_board
from secc.runtime import Station
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until
from tests.station.test_iso20_station import ALL, _exchange, _sap_iso20_only, _tls_client


def _ev(pki_dir: Path, with_certificate: bool) -> ssl.SSLContext:
    ctx = _tls_client(pki_dir, tls12=False)
    if with_certificate:
        ctx.load_cert_chain(
            str(pki_dir / "oem20" / "vehicle_chain.pem"), str(pki_dir / "oem20" / "vehicle.key")
        )
    return ctx


def _open_driver(e: Any) -> Any:
    """The driver of the EVSE's one open connection (before SessionSetup too), or None."""
    open_ = [d for d in e.drivers if d.ended is None]
    return open_[0] if open_ else None


def test_vehicle_chain_reaches_the_session_per_connection(pki_dir: Path) -> None:
    board, _ = build_board()
    section = evse(protocols=ALL)
    expected = load_certificates((pki_dir / "oem20" / "vehicle_chain.pem").read_bytes())

    async def one(st: Station, with_certificate: bool) -> tuple[x509.Certificate, ...]:
        e = st.evse(EVSE_ID)
        reader, writer = await asyncio.open_connection(
            "::1", e.ports["tls"], ssl=_ev(pki_dir, with_certificate), server_hostname=None
        )
        await _exchange(reader, writer, _sap_iso20_only())
        # a connection gets the EVSE only with its SessionSetupReq: look at its driver
        await wait_until(lambda: _open_driver(e) is not None)
        driver = _open_driver(e)
        assert driver is not None
        assert driver.config.tls13
        chain = driver.config.vehicle_chain
        writer.close()
        await wait_until(lambda: _open_driver(e) is None, timeout=10)
        return chain

    async def main() -> tuple[tuple[x509.Certificate, ...], ...]:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            return (await one(st, True), await one(st, False), await one(st, True))

    with_cert, without, again = run(main, timeout=60)
    assert list(with_cert) == expected and list(again) == expected
    assert without == ()


def test_deleted_oem_root_refuses_the_next_vehicle_certificate(
    pki_dir: Path, tmp_path: Path
) -> None:
    import shutil

    store_dir = tmp_path / "pki"
    shutil.copytree(pki_dir, store_dir, symlinks=True)
    store = Store(store_dir / "station")
    oem20_root = load_certificates((store_dir / "oem20" / "root.pem").read_bytes())[0]
    board, _ = build_board()
    section = evse(protocols=ALL)

    async def main() -> str:
        async with Station(station_config(store_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            # accepted while the root is installed
            reader, writer = await asyncio.open_connection(
                "::1", e.ports["tls"], ssl=_ev(store_dir, True), server_hostname=None
            )
            await _exchange(reader, writer, _sap_iso20_only())
            writer.close()
            (store.root / "trust" / "oem" / f"{fingerprint(oem20_root)}.pem").unlink()
            await wait_until(lambda: e.active is None or e.active.ended is not None, timeout=10)
            try:
                reader, writer = await asyncio.open_connection(
                    "::1", e.ports["tls"], ssl=_ev(store_dir, True), server_hostname=None
                )
                writer.write(_sap_iso20_only())
                data = await asyncio.wait_for(reader.read(100), 10)
                return f"read {data!r}"
            except (ssl.SSLError, ConnectionError) as exc:
                return str(exc)

    seen = run(main, timeout=60)
    assert "UNKNOWN_CA" in seen.upper(), seen


def test_tls12_asks_for_no_client_certificate(pki_dir: Path) -> None:
    """A -2 EV (TLS 1.2) holding a certificate is not asked for it: no vehicle chain."""
    board, _ = build_board()
    section = evse(protocols=ALL)

    async def main() -> tuple[str, tuple[x509.Certificate, ...]]:
        async with Station(station_config(pki_dir, None, section), boards={EVSE_ID: board}) as st:
            e = st.evse(EVSE_ID)
            ctx = _tls_client(pki_dir, tls12=True)
            ctx.load_cert_chain(
                str(pki_dir / "oem20" / "vehicle_chain.pem"), str(pki_dir / "oem20" / "vehicle.key")
            )
            reader, writer = await asyncio.open_connection(
                "::1", e.ports["tls"], ssl=ctx, server_hostname=None
            )
            version = writer.get_extra_info("ssl_object").version()
            await _exchange(reader, writer, _sap_iso20_only())
            await wait_until(lambda: _open_driver(e) is not None)
            driver = _open_driver(e)
            assert driver is not None
            chain = driver.config.vehicle_chain
            writer.close()
            return version, chain

    version, chain = run(main, timeout=60)
    assert (version, chain) == ("TLSv1.2", ())
