"""A renewed SECC certificate in the store is served from the next TLS session on,
without restarting the station (OCPP A02/A03: "switch TLS at the next session")."""

from __future__ import annotations

import asyncio
import datetime as dt
import shutil
import ssl
from dataclasses import replace
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from certs.csr import sign_csr
from certs.store import Store
from certs.testpki import key_pem, new_key, read_issued
from hal.backends.simulated import build_board
from secc.runtime import Station

from .conftest import EVSE_ID, evse, run, station_config


async def _served_leaf(port: int, root: Path) -> x509.Certificate:
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.load_verify_locations(cafile=str(root))
    client.maximum_version = ssl.TLSVersion.TLSv1_2
    client.set_ciphers("ECDHE-ECDSA-AES128-SHA256")
    _reader, writer = await asyncio.open_connection("::1", port, ssl=client)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return x509.load_der_x509_certificate(der)


def test_renewed_secc_certificate_is_served_at_the_next_session(
    pki_dir: Path, tmp_path: Path
) -> None:
    store_dir = tmp_path / "store"
    shutil.copytree(pki_dir / "station", store_dir, symlinks=True)
    board, _plant = build_board()
    root = pki_dir / "v2g" / "root.pem"

    async def main() -> None:
        base = station_config(pki_dir, None, evse())
        config = replace(base, certs=replace(base.certs, store=store_dir))
        async with Station(config, boards={EVSE_ID: board}) as station:
            e = station.evse(EVSE_ID)
            server = e.servers[0]  # TLS first (runtime order: tls, tcp)
            assert e.tls is not None
            old = await _served_leaf(server.port, root)
            # renew: a fresh key and a leaf from CPO Sub-CA 2, installed into the store
            sub2, sub1 = read_issued(pki_dir, "v2g/sub2"), read_issued(pki_dir, "v2g/sub1")
            key = new_key()
            now = dt.datetime.now(dt.UTC)
            csr = (
                x509.CertificateSigningRequestBuilder()
                .subject_name(old.subject)
                .sign(key, hashes.SHA256())
                .public_bytes(serialization.Encoding.PEM)
            )
            leaf = sign_csr(csr, sub2, now)
            chain = b"".join(
                c.public_bytes(serialization.Encoding.PEM)
                for c in (leaf, sub2.certificate, sub1.certificate)
            )
            Store(store_dir).install_leaf("v2g", chain, key_pem(key), utc_now=now)
            new = await _served_leaf(server.port, root)
            assert new == leaf and new != old

    run(main)
