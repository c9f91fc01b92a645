"""Start-up (issue 17): importing the station loads no ISO-2/DIN/-20 schema module; once
ready, ``secc run`` imports the codec of the protocols its EVSEs offer (and no other)
and freezes the start-up objects out of the garbage collector's reach."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.station.conftest import EVSE_ID


def _run(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return out.stdout.strip()


def test_importing_the_station_loads_no_schema_module() -> None:
    loaded = _run(
        """
        import sys
        import secc.runtime, secc.aio.driver, secc.cli.run
        print(sorted(m for m in sys.modules if m.startswith("secc.codec._generated.")))
        """
    )
    # the appHandshake (tiny, every session starts with it) and nothing else
    assert loaded == "['secc.codec._generated.apphand']"


def test_settle_imports_the_offered_protocols_and_freezes() -> None:
    out = _run(
        """
        import gc, sys
        from secc.cli.run import settle
        from tests.station.conftest import evse, station_config

        config = station_config(None, None, evse(protocols=("iso2",)))
        assert gc.get_freeze_count() == 0
        settle(config)
        loaded = sorted(m.rsplit(".", 1)[1] for m in sys.modules
                        if m.startswith("secc.codec._generated."))
        print(loaded, gc.get_freeze_count() > 10000)
        """
    )
    assert out == "['apphand', 'iso2', 'xmldsig'] True"


# imported by nothing the start needs (the checks included); a station that loads them
# before it is ready starts slower and resides bigger (issue 17, bench/footprint.py)
DEFERRED = (
    "asn1crypto",
    "importlib.metadata",
    "certs.validate",
    "secc.ocpp_bridge",
    "ocpp",
    "websockets",
    # the start-up checks and the SECC chains are read with certs.der (no cryptography:
    # ~40 ms and ~10 MiB); cryptography loads with the first Plug & Charge check
    "cryptography",
    "certs._util",
    "certs.store",
    "certs.ocsp",
    # the session driver and core, the traces: after SDP-ready
    "secc.aio.driver",
    "secc.core.actions",
    "secc.core.session",
    "secc.trace",
    # argparse's help formatter imports shutil (and with it bz2 and lzma); a plain
    # `secc run --config FILE` is read without argparse (and ctypes loads after ready,
    # before settle: test_at_sdp_ready_no_argparse_ctypes_or_collector)
    "shutil",
    "argparse",
    # the TLS selector hashes the trusted_ca_keys identifiers of its chains for the first
    # ClientHello naming any, the firmware hook its images when it installs one
    "hashlib",
    # a plain station file is read without tomllib (secc.configload.read_plain_toml)
    "tomllib",
    # the V2G server binds the codec and the core's events once, after ready or at the
    # first connection (secc.aio.v2g_server._bind), and picks its port with os.urandom
    "secc.codec",
    "secc.core.events",
    "secc.core.construct",
    "random",
)


def test_secc_run_is_ready_without_the_deferred_modules(pki_dir: Path, tmp_path: Path) -> None:
    """The real ``secc run`` (checks, TLS and TCP servers, SDP) up to SDP-ready: the
    post-ready ``settle`` step is replaced by a report of what is imported by then."""
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
            [evse.hal]
            backend = "simulated"
            """
        )
    )
    out = _run(
        f"""
        import os, sys
        import secc.cli.run as run

        def report(config):
            deferred = {DEFERRED!r}
            print("ready", sorted(m for m in sys.modules if m.split(".")[0] in deferred
                                  or m.startswith(deferred)), flush=True)
            os._exit(0)

        run.settle = report
        sys.exit(run.main(["--config", {str(config)!r}], prog="secc run"))
        """
    )
    assert out == "ready []"


def _store_config(tmp_path: Path, store: Path) -> Path:
    config = tmp_path / "secc.toml"
    config.write_text(
        textwrap.dedent(
            f"""
            [certs]
            store = "{store}"
            [[evse]]
            evse_id = "{EVSE_ID}"
            address = "::1"
            tls_port = 0
            tcp_port = 0
            sdp_port = 0
            [evse.hal]
            backend = "simulated"
            """
        )
    )
    return config


# ``secc run`` (and --check) with cryptography made unimportable: the checks must not
# need it, and a misconfigured store must still stop the start with its one line
_NO_CRYPTOGRAPHY = """
import sys

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "cryptography":
            raise ImportError("cryptography imported before SDP-ready")
        return None

sys.meta_path.insert(0, Refuse())
from secc.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def _secc_run_without_cryptography(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _NO_CRYPTOGRAPHY, "run", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_a_misconfigured_store_fails_fast_with_its_line(pki_dir: Path, tmp_path: Path) -> None:
    """A broken chain file and a key of another certificate: ``secc run`` and ``--check``
    exit 1 with the one line naming the store, the chain and the file, without loading
    cryptography (the checks read the chain with certs.der and let OpenSSL match the
    key), and a good store passes ``--check`` the same way."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    from certs.files import StoreFiles

    store = tmp_path / "store"
    shutil.copytree(pki_dir / "station", store, symlinks=True)
    config = _store_config(tmp_path, store)
    ok = _secc_run_without_cryptography("--config", str(config), "--check")
    assert ok.returncode == 0, ok.stderr
    chain, key = StoreFiles(store).leaf_paths("v2g")
    good_chain, good_key = chain.read_bytes(), key.read_bytes()

    def refused(expected: str) -> None:
        line = f'secc run: error: {config}: certs.store = "{store}": v2g chain: {expected}'
        for extra in ((), ("--check",)):
            done = _secc_run_without_cryptography("--config", str(config), *extra)
            assert done.returncode == 1, done.stderr
            assert done.stderr.splitlines() == [line], done.stderr

    # a PEM block whose content is not a certificate
    chain.write_bytes(b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n")
    refused(
        f"certificate {chain}: not a PEM certificate chain (Certificate: tag 0x00, expected 0x30)"
    )
    chain.write_bytes(b"no PEM here")
    refused(f"certificate {chain}: not a PEM certificate chain (no certificate in it)")
    chain.write_bytes(good_chain)
    other = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    key.write_bytes(other)
    refused(f"private key {key} does not match the certificate {chain}")
    key.write_bytes(good_key)
    assert _secc_run_without_cryptography("--config", str(config), "--check").returncode == 0


def test_the_settled_station_has_no_cryptography() -> None:
    """After the post-ready imports (the session core, the codecs of every protocol) an
    idle station or one serving EIM sessions holds no cryptography (~9 MiB resident):
    the core loads it with its first Plug & Charge check (issue 17)."""
    out = _run(
        f"""
        import sys
        from secc.cli.run import settle
        from secc.config import parse

        section = {{
            "evse_id": {EVSE_ID!r},
            "address": "::1",
            "protocols": ["iso20-dc", "iso20-ac", "iso2", "din"],
            "energy_modes": ["AC_three_phase_core", "DC_extended"],
            "hal": {{"backend": "simulated"}},
        }}
        settle(parse({{"evse": [section]}}, "secc.toml"))
        print(sorted(m for m in sys.modules if m.split(".")[0] == "cryptography"
                     or m in ("certs.validate", "certs.xmldsig", "certs._util")))
        """
    )
    assert out == "[]"


def test_at_sdp_ready_no_argparse_ctypes_or_collector(pki_dir: Path, tmp_path: Path) -> None:
    """``secc run --config FILE`` through the console entry point, reported at the ready
    notification itself: argparse (a plain ``--config FILE`` is read without it),
    ctypes (glibc's mmap threshold is set after ready) and the help texts are not
    loaded, and the garbage collector is off; once the post-ready work is done the
    collector is back on, the start-up objects frozen and the threshold set."""
    config = _store_config(tmp_path, pki_dir / "station")
    out = _run(
        f"""
        import gc, os, sys
        import secc.sdnotify
        import secc.cli.run as run

        def ready(self, status=None):
            late = ("argparse", "ctypes", "gettext", "shutil", "secc.cli._help")
            print("ready", sorted(m for m in late if m in sys.modules), gc.isenabled(),
                  flush=True)
            return True

        secc.sdnotify.Notifier.ready = ready
        settle = run._settle

        def settled(config):
            settle(config)
            print("settled", gc.isenabled(), gc.get_freeze_count() > 10000,
                  "ctypes" in sys.modules, flush=True)
            os._exit(0)

        run._settle = settled
        from secc.cli.main import main
        sys.exit(main(["run", "--config", {str(config)!r}]))
        """
    )
    assert out.splitlines() == ["ready [] False", "settled True True True"]


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["--config", "/etc/secc/other.toml"],
        ["--config=/etc/secc/other.toml"],
        ["--config", "relative.toml"],
    ],
)
def test_the_quick_arguments_are_argparse_s(argv: list[str]) -> None:
    """The plain ``secc run [--config FILE]`` read without argparse gives what argparse
    gives for it."""
    from secc.cli import run

    quick = run._quick(argv)
    assert quick is not None
    assert vars(quick) == vars(run._parser("secc run").parse_args(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["--config"],
        ["--config="],
        ["--config", ""],
        ["--config", "-x"],
        ["--conf", "x.toml"],
        ["--config", "x.toml", "--check"],
        ["--check"],
        ["--help"],
        ["-h"],
        ["x.toml"],
        ["--debug", "--config", "x.toml"],
    ],
)
def test_anything_else_goes_to_argparse(argv: list[str]) -> None:
    from secc.cli import run

    assert run._quick(argv) is None


def test_secc_run_help_and_usage_errors_are_argparse_s(tmp_path: Path) -> None:
    """--help and a usage error still come from argparse (exit status 0 and 2)."""
    for argv, status, stream, text in (
        (["--help"], 0, "stdout", "--config-only"),
        (["--config"], 2, "stderr", "expected one argument"),
        (["--nope"], 2, "stderr", "unrecognized arguments: --nope"),
    ):
        done = subprocess.run(
            [sys.executable, "-m", "secc.cli.main", "run", *argv],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == status, done.stderr
        assert text in getattr(done, stream)


def test_config_hints_are_get_type_hints() -> None:
    """configload evaluates the annotation of each key a file gives, one at a time: the
    same types ``typing.get_type_hints`` gives for every field of every config class."""
    import dataclasses
    import typing

    import secc.config
    import secc.limits
    from secc.configload import _hint

    checked = 0
    seen: set[type] = set()
    todo: list[type] = [secc.config.StationConfig]
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            assert _hint(cls, f.name) == hints[f.name], (cls, f.name)
            checked += 1
            for tp in (hints[f.name], *typing.get_args(hints[f.name])):
                if isinstance(tp, type) and dataclasses.is_dataclass(tp):
                    todo.append(tp)
    assert checked > 50 and secc.limits.Limits in seen
