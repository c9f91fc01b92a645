"""``secc ev`` (ISO 15118-2, DIN) against the whole station on loopback: Plug & Charge over
TLS 1.2 with only the EV's own files (no root key anywhere near the EV), certificate
installation and update answered by a lab back end (the station's local back end with the
test PKI's CPS), the TLS key log, the DIN EVSE ID; and clear errors for missing or
unusable EV files."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
from pathlib import Path

import pytest

from certs import testpki
from hal.backends.simulated import build_board
from secc.aio.backends import LocalBackend
from secc.cli.ev import main as ev_main
from secc.config import AuthorizationSection
from secc.core.actions import EndReason
from secc.core.config import PncTrust
from secc.runtime import Station
from secc.testing.pki import Credentials, certificate_backend, der
from tests.station.conftest import EVSE_ID, evse, run, station_config, wait_until

# what an EV holds of a make-test-pki directory, and nothing else
EV_FILES = (
    "v2g/root.pem",
    "mo/contract_chain.pem",
    "mo/contract.key",
    "oem/prov_chain.pem",
    "oem/prov.key",
)


def _back_end_credentials(pki: testpki.TestPki) -> Credentials:
    """The lab CPS/MO back end's material (it holds the CPS key, the EV never does)."""
    return Credentials(
        pki=pki,
        emaid=pki.options.emaid,
        contract_chain=tuple(der(c) for c in pki.chain(*testpki.CHAINS["contract"])),
        contract_key=pki["contract"].key,
        oem_chain=tuple(der(c) for c in pki.chain(*testpki.CHAINS["oem_prov"])),
        oem_key=pki["oem_prov"].key,
        trust=PncTrust(roots=(pki.cert("mo_root"), pki.cert("v2g_root"))),
    )


def ev_only_dir(pki_dir: Path, target: Path) -> Path:
    """A copy of the EV's files only (no private key of any CA, no CPS, no station)."""
    for rel in EV_FILES:
        (target / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(pki_dir / rel, target / rel)
    return target


def _session(
    lab_pki: tuple[testpki.TestPki, Path],
    tmp_path: Path,
    argv: list[str],
    *,
    dc: bool = False,
) -> tuple[int, EndReason | None]:
    """``secc ev argv`` against the station (TLS port, SDP on ::1) with a lab back end."""
    pki, pki_dir = lab_pki
    backend_creds = _back_end_credentials(pki)
    section = evse()

    def backend(_section: object, emit: object) -> LocalBackend:
        return LocalBackend(
            AuthorizationSection(),
            emit,  # type: ignore[arg-type]
            certificates=certificate_backend(backend_creds, os.urandom),
        )

    async def main() -> tuple[int, EndReason | None]:
        config = station_config(pki_dir, tmp_path, section)
        async with Station(
            config, boards={EVSE_ID: build_board()[0]}, backend_factory=backend
        ) as st:
            e = st.evse(EVSE_ID)
            assert e.sdp is not None
            args = ["--address", "::1", "--sdp-port", str(e.sdp.port), "--loops", "2"]
            args += ["--mode", "dc" if dc else "ac", "--msg-timeout", "10", *argv]
            code = await asyncio.to_thread(ev_main, args, "secc ev")
            await wait_until(lambda: bool(e.ended) and e.active is None, timeout=20)
            return code, e.ended[-1].end.reason

    return run(main, timeout=90)


def test_pnc_with_the_evs_own_files_and_a_key_log(
    lab_pki: tuple[testpki.TestPki, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``--pki`` on a directory holding only the EV's files: no V2G root key is needed;
    ``--tls-keylog`` writes the TLS 1.2 secrets to a 0600 file."""
    ev_dir = ev_only_dir(lab_pki[1], tmp_path / "ev")
    keylog = tmp_path / "keys.log"
    argv = ["--payment", "pnc", "--pki", str(ev_dir), "--tls-keylog", str(keylog)]
    code, reason = _session(lab_pki, tmp_path, argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert reason is EndReason.EV_STOP
    assert "PaymentDetailsRes" in out and "AuthorizationRes" in out and "FAILED" not in out
    assert "EVSE ID DE*ABC*E1234567*1" in out
    assert "EV: done (TLSv1.2 ECDHE-ECDSA-AES128-SHA256)" in out
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600
    lines = [line for line in keylog.read_text().splitlines() if not line.startswith("#")]
    assert lines and all(line.startswith("CLIENT_RANDOM ") for line in lines)  # TLS 1.2


def test_certificate_installation_with_single_files(
    lab_pki: tuple[testpki.TestPki, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An EV without a contract installs one (CertificateInstallationReq signed with its
    OEM provisioning key, the contract key opened with it), then charges with it."""
    d = lab_pki[1]
    argv = ["--payment", "pnc", "--no-contract", "--v2g-root", str(d / "v2g" / "root.pem")]
    argv += ["--oem-chain", str(d / "oem" / "prov_chain.pem"), "--oem-key", str(d / "oem/prov.key")]
    code, reason = _session(lab_pki, tmp_path, argv, dc=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert reason is EndReason.EV_STOP
    lines = out.splitlines()
    install = next(i for i, line in enumerate(lines) if "CertificateInstallationRes" in line)
    auth = next(i for i, line in enumerate(lines) if "AuthorizationRes" in line)
    assert " OK " in lines[install] + " " and install < auth
    assert "FAILED" not in out and "CurrentDemandRes" in out


def test_certificate_update(
    lab_pki: tuple[testpki.TestPki, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """CertificateUpdateReq (signed with the contract key) renews the contract, which
    then authorizes the session."""
    ev_dir = ev_only_dir(lab_pki[1], tmp_path / "ev")
    argv = ["--payment", "pnc", "--pki", str(ev_dir), "--update-certificate"]
    code, reason = _session(lab_pki, tmp_path, argv)
    out = capsys.readouterr().out
    assert code == 0, out
    assert reason is EndReason.EV_STOP
    assert "CertificateUpdateRes" in out and "FAILED" not in out
    assert out.index("CertificateUpdateRes") < out.index("AuthorizationRes")


def test_din_shows_the_stations_evse_id(
    lab_pki: tuple[testpki.TestPki, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """DIN's EVSEID is hexBinary: the station's "DE*ABC*E1234567*1" is not a DIN SPEC
    91286 ID, so it sends 0x00 ("no EVSE ID"), and the EV says so."""
    code, _ = _session(lab_pki, tmp_path, ["--din"], dc=True)
    out = capsys.readouterr().out
    assert code == 0, out
    assert "SessionSetupRes" in out and "EVSE ID 0x00 (none)" in out
    assert out.rstrip().endswith("EV: done (TCP)")  # DIN has no TLS: TCP by default


@pytest.mark.parametrize(
    ("remove", "corrupt", "message"),
    [
        ("mo/contract.key", None, "contract key {d}/mo/contract.key: no such file"),
        ("v2g/root.pem", None, "V2G root certificate {d}/v2g/root.pem: no such file"),
        (None, "mo/contract.key", "contract key {d}/mo/contract.key: cannot load"),
        (None, "mo/contract_chain.pem", "contract chain {d}/mo/contract_chain.pem: not PEM"),
    ],
)
def test_missing_or_unusable_files_are_named(
    pki_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    remove: str | None,
    corrupt: str | None,
    message: str,
) -> None:
    d = ev_only_dir(pki_dir, tmp_path / "ev")
    if remove:
        (d / remove).unlink()
    if corrupt:
        (d / corrupt).write_text("-----BEGIN garbage-----\n")
    argv = ["--address", "::1", "--payment", "pnc", "--pki", str(d)]
    assert ev_main(argv, "secc ev") == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("secc ev: " + message.format(d=d)), err


def test_a_key_that_is_not_the_chains_is_refused(
    pki_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--address", "::1", "--payment", "pnc", "--v2g-root", str(pki_dir / "v2g/root.pem")]
    argv += ["--contract-chain", str(pki_dir / "mo/contract_chain.pem")]
    argv += ["--contract-key", str(pki_dir / "oem/prov.key")]
    assert ev_main(argv, "secc ev") == 1
    err = capsys.readouterr().err
    assert f"{pki_dir}/oem/prov.key is not the key of the leaf certificate in" in err


@pytest.mark.parametrize("protocol", ["iso2", "iso20"])
def test_installation_without_a_v2g_root_is_refused(
    pki_dir: Path, protocol: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The EV checks the CPS chain against its V2G roots: no root, no installation."""
    oem = "oem20" if protocol == "iso20" else "oem"
    argv = ["--address", "::1", "--protocol", protocol, "--payment", "pnc", "--no-contract"]
    argv += ["--oem-chain", str(pki_dir / oem / "prov_chain.pem")]
    argv += ["--oem-key", str(pki_dir / oem / "prov.key")]
    with pytest.raises(SystemExit):
        ev_main(argv, "secc ev")
    assert "need --v2g-root (or --pki DIR)" in capsys.readouterr().err


def test_the_key_log_is_made_0600_and_never_followed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An existing key log is made 0600 before anything is written; a symlink is refused
    (the secrets go to the file named, nowhere else); a bad path is named."""
    closed = socket.socket(socket.AF_INET6)
    closed.bind(("::1", 0))
    port = closed.getsockname()[1]  # bound, not listening: the connection is refused
    base = ["--address", "::1", "--port", str(port), "--tls-keylog"]
    try:
        existing = tmp_path / "keys.log"
        existing.write_text("")
        existing.chmod(0o644)
        assert ev_main([*base, str(existing)], "secc ev") == 1
        assert stat.S_IMODE(existing.stat().st_mode) == 0o600
        assert "cannot connect to [::1]" in capsys.readouterr().err
        link = tmp_path / "link.log"
        link.symlink_to(tmp_path / "elsewhere.log")
        assert ev_main([*base, str(link)], "secc ev") == 1
        assert f"secc ev: TLS key log {link}: " in capsys.readouterr().err
        assert not (tmp_path / "elsewhere.log").exists()
        missing = tmp_path / "no" / "keys.log"
        assert ev_main([*base, str(missing)], "secc ev") == 1
        err = capsys.readouterr().err
        assert f"secc ev: TLS key log {missing}: cannot open it: No such file or directory" in err
    finally:
        closed.close()


def test_every_option_says_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        ev_main(["--help"], "secc ev")
    out = " ".join(capsys.readouterr().out.split())
    for text in (
        "(default: 15118)",
        "(default: iso2)",
        "(default: ac)",
        "(default: eim)",
        "(default: scheduled)",
        "(default: 5)",
        "(default: 400)",
        "V2G_EVCC_Msg_Timeout",
        "created 0600",
    ):
        assert text in out, text
    assert "``" not in out  # no reStructuredText in --help
