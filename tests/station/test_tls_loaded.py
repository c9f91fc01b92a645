"""The SECC chains loaded once (issue 17): the start-up check of each chain loads it into
a TLS context (:func:`secc.preflight.check_station`), and the station's start contexts
take those over (:data:`secc.aio.tls.LoadedChains`) instead of loading every chain and
key again.  A context taken over must be the context built from scratch: the same
profile settings, and the same handshake with an EV."""

from __future__ import annotations

import datetime as dt
import ssl
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from certs.files import StoreFiles
from secc import preflight
from secc.aio.tls import LoadedChains, SeccChain, secc_context, secc_context13
from secc.runtime import load_credentials, load_vehicle_roots
from tests.station.conftest import EVSE_ID, station_config


def _loaded(pki_dir: Path) -> tuple[LoadedChains, Any]:
    config = station_config(pki_dir, None)
    loaded: LoadedChains = {}
    assert preflight.check_files(config, None, loaded) == []
    return loaded, config


def test_the_check_keeps_each_secc_chain_it_loaded(pki_dir: Path) -> None:
    loaded, config = _loaded(pki_dir)
    store = StoreFiles(pki_dir / "station")
    paths = {use: store.leaf_paths(use) for use in ("v2g", "v2g20")}
    assert set(loaded) == {(str(c), str(k)) for c, k in paths.values()}
    assert all(type(c) is ssl.SSLContext for c in loaded.values())
    # and the station's chains are those files
    creds = load_credentials(config, dt.datetime.now(dt.UTC))
    served = [*creds.chains, *creds.iso20_chains]
    assert {(str(c.certfile), str(c.keyfile)) for c in served} == set(loaded)


def test_a_chain_that_fails_its_check_is_not_kept(pki_dir: Path, tmp_path: Path) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(pki_dir / "station", store, symlinks=True)
    chain, key = StoreFiles(store).leaf_paths("v2g")
    key.write_bytes(StoreFiles(store).leaf_paths("v2g20")[1].read_bytes())  # another key
    config = station_config(None, None)
    config = type(config)(
        station=config.station, certs=type(config.certs)(store=store), evse=config.evse
    )
    loaded: LoadedChains = {}
    problems = preflight.check_files(config, None, loaded)
    assert [p.cause for p in problems] == [
        f"v2g chain: private key {key} does not match the certificate {chain}"
    ]
    v2g20 = StoreFiles(store).leaf_paths("v2g20")
    assert set(loaded) == {(str(v2g20[0]), str(v2g20[1]))}


def _settings(ctx: ssl.SSLContext) -> tuple[object, ...]:
    return (
        ctx.protocol,
        ctx.minimum_version,
        ctx.maximum_version,
        ctx.options,
        ctx.verify_mode,
        ctx.verify_flags,
        ctx.check_hostname,
        ctx.cert_store_stats(),
        [c["name"] for c in ctx.get_ciphers()],
        ctx.get_ca_certs(binary_form=True),
        ctx.keylog_filename,
    )


def _handshake(server: ssl.SSLContext, tls13: bool) -> tuple[object, ...]:
    """A handshake over memory BIOs with an EV that verifies nothing: what it sees."""
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    if tls13:
        client.minimum_version = ssl.TLSVersion.TLSv1_3
    else:
        client.maximum_version = ssl.TLSVersion.TLSv1_2
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    ev = client.wrap_bio(c_in, c_out, server_side=False)
    secc = server.wrap_bio(s_in, s_out, server_side=True)
    done = [False, False]
    for _ in range(20):
        for i, (obj, out, peer_in) in enumerate(((ev, c_out, s_in), (secc, s_out, c_in))):
            if not done[i]:
                try:
                    obj.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            data = out.read()
            if data:
                peer_in.write(data)
        if all(done):
            break
    assert all(done)
    return (ev.version(), ev.cipher(), ev.getpeercert(binary_form=True), secc.cipher())


@pytest.mark.parametrize("tls13", [False, True], ids=["tls12", "tls13"])
def test_a_context_taken_over_is_the_one_built_from_scratch(pki_dir: Path, tls13: bool) -> None:
    loaded, config = _loaded(pki_dir)
    creds = load_credentials(config, dt.datetime.now(dt.UTC))
    chain: SeccChain = (creds.iso20_chains if tls13 else creds.chains)[0]
    key = (str(chain.certfile), str(chain.keyfile))
    given = loaded[key]
    if tls13:
        roots = load_vehicle_roots(config)
        assert roots  # (the test PKI has -20 roots: the vehicle certificate is requested)
        fresh = secc_context13(chain, vehicle_roots=roots)
        taken = secc_context13(chain, vehicle_roots=roots, loaded=loaded)
    else:
        fresh = secc_context(chain)
        taken = secc_context(chain, loaded=loaded)
    assert taken is given and key not in loaded  # taken out: used once
    assert _settings(taken) == _settings(fresh)
    assert _handshake(taken, tls13) == _handshake(fresh, tls13)
    # nothing (left) in loaded for it: loaded from the files as before
    again = secc_context13(chain, loaded=loaded) if tls13 else secc_context(chain, loaded=loaded)
    assert again is not given


def test_secc_run_loads_each_chain_once_before_ready(pki_dir: Path, tmp_path: Path) -> None:
    """The real ``secc run`` up to the ready notification: each of the two SECC chains
    (-2 and -20) is loaded by OpenSSL once (by its check), and the station serves it."""
    config = tmp_path / "secc.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [station]
            log_level = "warning"
            [certs]
            store = "{pki_dir / "station"}"
            [[evse]]
            evse_id = "{EVSE_ID}"
            address = "::1"
            tls_port = 0
            tcp_port = 0
            sdp_port = 0
            energy_modes = ["AC_three_phase_core", "DC_extended"]
            protocols = ["iso20-dc", "iso2"]
            [evse.hal]
            backend = "simulated"
            """
        )
    )
    code = f"""
        import os, ssl, sys
        import secc.sdnotify
        import secc.cli.run as run
        import secc.runtime

        loads = []
        real = ssl.SSLContext.load_cert_chain

        def counting(self, certfile, keyfile=None, password=None):
            loads.append(os.path.basename(os.path.dirname(os.path.dirname(certfile))))
            return real(self, certfile, keyfile, password)

        ssl.SSLContext.load_cert_chain = counting
        started = []
        start = secc.runtime.Station.start

        async def keep(self, **kw):
            started.append(self)
            return await start(self, **kw)

        secc.runtime.Station.start = keep

        def ready(self, status=None):
            tls = started[0].evses[0].tls
            print("ready", sorted(loads), len(tls._contexts), len(tls._contexts13), flush=True)
            os._exit(0)

        secc.sdnotify.Notifier.ready = ready
        sys.exit(run.main(["--config", {str(config)!r}], prog="secc run"))
        """
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.stdout.strip() == "ready ['v2g', 'v2g20'] 1 1", out.stderr


def test_the_start_reads_the_vehicle_roots_once(pki_dir: Path) -> None:
    """The credentials carry the -20 OEM and V2G roots as ``load_vehicle_roots`` reads
    them; the TLS 1.3 start context verifies against those without asking the store
    again (later handshakes ask it, as before)."""
    from secc.aio.tls import station_tls

    _, config = _loaded(pki_dir)
    creds = load_credentials(config, dt.datetime.now(dt.UTC))
    assert creds.vehicle_roots and creds.vehicle_roots == load_vehicle_roots(config)
    asked: list[int] = []

    def roots() -> tuple[Any, ...]:
        asked.append(1)
        return load_vehicle_roots(config)

    selector = station_tls(
        creds.chains,
        iso20_chains=creds.iso20_chains,
        vehicle_roots=roots,
        vehicle_roots_now=creds.vehicle_roots,
    )
    assert selector is not None and asked == []
    fresh = secc_context13(creds.iso20_chains[0], vehicle_roots=creds.vehicle_roots)
    assert _settings(selector._contexts13[0]) == _settings(fresh)
    selector.default  # noqa: B018 - a -2 connection: no roots asked
    assert asked == []
    assert selector._fresh13(0, "TLS 1.3 offered").tls13  # a -20 connection: asked now
    assert asked == [1]
