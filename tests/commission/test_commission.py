"""`secc commission` against the simulated HAL, a real certificate store and the test
CSMS (OCPP security profile 2 over TLS on loopback): a fully provisioned station is READY;
each missing or broken item gives its FAIL with the right fix, and READY follows."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509

from certs.testpki import build_test_pki
from hal.api import Board
from hal.backends.simulated import Plant, build_board
from secc.commission.context import Context, Deps
from secc.commission.model import Answers, Status, UseCase
from secc.commission.report import Report
from secc.commission.runner import commission
from secc.commission.system import ClockSync
from secc.config import EvseSection
from tests.commission.conftest import PASSWORD, STATION, StationDir, ca_loop, v2g_chain_for
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import Behaviour, TestCsms

SYNCED = ClockSync(True, "test: synchronised")
PRESET = Answers(use_case=UseCase.PUBLIC, apply_preset=True, csms_timeout=10, sign_timeout=20)


def deps(**kw: Any) -> Deps:
    return Deps(clock_sync=lambda: SYNCED, **kw)


async def run_station(
    station: StationDir,
    *,
    answers: Answers = PRESET,
    deps_: Deps | None = None,
    behaviour: Behaviour | None = None,
    ca: Callable[[str | None, str], str | None] | None = None,
) -> tuple[Report, TestCsms]:
    csms = TestCsms(
        password=PASSWORD,
        ssl_context=server_context(station.pki, client_auth=False),
        behaviour=behaviour,
    )
    await csms.start()
    station.write_config(csms.url.replace("127.0.0.1", "localhost"), profile=2)
    sent: list[Any] = []
    ca_task = asyncio.ensure_future(ca_loop(csms, ca or (lambda k, c: None), sent))
    try:
        ctx = Context(station.config, answers, deps_ or deps())
        report = await commission(ctx)
    finally:
        ca_task.cancel()
        await asyncio.gather(ca_task, return_exceptions=True)
        await csms.stop()
    return report, csms


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))  # type: ignore[arg-type]


def by_name(report: Report) -> dict[str, Any]:
    return {o.name: o.result for o in report.outcomes}


def test_fully_provisioned_station_is_ready(station: StationDir) -> None:
    report, csms = run(run_station(station))
    results = by_name(report)
    assert report.ready, report.markdown()
    assert csms.boots == ["Accepted"]
    assert results["provision.preset"].status is Status.PASS
    for name in ("config", "clock", f"hal[{'DE*ABC*E1234567*1'}]", "csms", "certs.csms"):
        assert results[name].status is Status.PASS, (name, results[name])
    for name in ("certs.v2g-roots", "certs.secc", "certs.mo-roots", "pnc"):
        assert results[name].status is Status.PASS, (name, results[name])
    assert "contactors close/open with feedback" in results["hal[DE*ABC*E1234567*1]"].reason
    assert results["certs.ocsp"].status is Status.WARN  # no OCSP answers cached yet
    assert results["network[DE*ABC*E1234567*1]"].status is Status.WARN  # no PLC interface
    data = report.to_json()
    assert data["ready"] is True and data["station"] == STATION
    digest = data["config"]["sha256"]  # type: ignore[index]
    import hashlib

    assert digest == hashlib.sha256(station.config.read_bytes()).hexdigest()
    labels = {c["label"] for c in data["certificates"]}  # type: ignore[union-attr]
    assert {"trust/v2g", "leaf/v2g[0]", "trust/mo", "trust/csms"} <= labels
    leaf = next(c for c in data["certificates"] if c["label"] == "leaf/v2g[0]")  # type: ignore[union-attr]
    assert "DC=CPO" in leaf["subject"] and len(leaf["sha256"]) == 64 and leaf["daysLeft"] > 300
    assert "DE*ABC*E1234567*1 board (simulated)" in data["firmware"]  # type: ignore[operator]
    assert "READY for Plug & Charge" in report.markdown()
    assert "<table>" in report.html() and "READY" in report.html()
    json.loads(report.json_text())


def _remove_v2g_roots(station: StationDir) -> None:
    for path in (station.store_path / "trust" / "v2g").glob("*.pem"):
        path.unlink()


def _expire_secc_certificate(station: StationDir) -> None:
    """Replace the SECC chain by one issued 400 days ago (the leaf lived 365 days)."""
    old = build_test_pki(dt.datetime.now(dt.UTC) - dt.timedelta(days=400))
    from certs.testpki import key_pem, write_test_pki

    del write_test_pki
    gen = (station.store_path / "leaf" / "v2g" / "current").resolve()
    chain = [old.cert("secc"), old.cert("cpo_sub2"), old.cert("cpo_sub1")]
    from cryptography.hazmat.primitives.serialization import Encoding

    (gen / "chain.pem").write_bytes(b"".join(c.public_bytes(Encoding.PEM) for c in chain))
    (gen / "key.pem").write_bytes(key_pem(old["secc"].key))
    for path in (station.store_path / "trust" / "v2g").glob("*.pem"):
        path.unlink()
    (station.store_path / "trust" / "v2g" / "old.pem").write_bytes(
        old.cert("v2g_root").public_bytes(Encoding.PEM)
    )


async def _stuck_board(evse: EvseSection) -> Board:
    board, _ = build_board(Plant(contactor_stuck_open=True))
    return board


def _board(**faults: Any) -> Callable[[EvseSection], Awaitable[Board]]:
    async def open_board(evse: EvseSection) -> Board:
        board, _ = build_board(Plant(**faults))
        return board

    return open_board


def _year_ahead() -> dt.datetime:
    return dt.datetime.now(dt.UTC) + dt.timedelta(days=365)


CASES: dict[str, dict[str, Any]] = {
    "no V2G root": {
        "setup": _remove_v2g_roots,
        "check": "certs.v2g-roots",
        "reason": "no V2G root certificate installed",
        "fix": "--install-root v2g=",
    },
    "expired SECC certificate": {
        "setup": _expire_secc_certificate,
        "check": "certs.secc",
        "reason": "expired on",
        "fix": "--sign V2GCertificate",
    },
    "CSMS refuses boot": {
        "behaviour": Behaviour(boot_statuses=["Rejected"]),
        "check": "csms",
        "reason": "refused BootNotification (Rejected)",
        "fix": f"register station '{STATION}' in the CSMS",
    },
    "contactor feedback stuck": {
        "deps": deps(open_board=_stuck_board),
        "check": "hal[DE*ABC*E1234567*1]",
        "reason": "contactor feedback stays OPEN after close",
        "fix": "auxiliary (feedback) contact wiring",
    },
    "contactor welded": {
        "deps": deps(open_board=_board(contactor_welded=True)),
        "check": "hal[DE*ABC*E1234567*1]",
        "reason": "feedback stays CLOSED after open",
        "fix": "replace the contactor",
    },
    "RCD tripped": {
        "deps": deps(open_board=_board(rcd_tripped=True, residual_ma=30.0)),
        "check": "hal[DE*ABC*E1234567*1]",
        "reason": "the RCD monitor reads tripped (30 mA)",
        "fix": "reset the RCD",
    },
    "clock off by a year": {
        "deps": Deps(utc_now=_year_ahead, clock_sync=lambda: ClockSync(False, "test: unsynced")),
        "check": "clock",
        "reason": "365 days ahead of the CSMS's",
        "fix": "timedatectl set-ntp true",
    },
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_broken_item_fails_with_its_fix(station: StationDir, case: str) -> None:
    spec = CASES[case]
    if "setup" in spec:
        spec["setup"](station)
    report, _ = run(run_station(station, deps_=spec.get("deps"), behaviour=spec.get("behaviour")))
    result = by_name(report)[spec["check"]]
    assert result.status is Status.FAIL, (case, result)
    assert spec["reason"] in result.reason, result.reason
    assert spec["fix"] in result.fix, result.fix
    assert not report.ready
    assert by_name(report)["config"].status is Status.PASS


def test_clock_off_by_a_year_also_says_not_synchronised(station: StationDir) -> None:
    spec = CASES["clock off by a year"]
    report, _ = run(run_station(station, deps_=spec["deps"]))
    reason = by_name(report)["clock"].reason
    assert "not synchronised (test: unsynced)" in reason
    # the SECC leaf (365 days) is seen as expiring or expired a year ahead: its check says so
    assert by_name(report)["certs.secc"].status is not Status.PASS


def test_provisioning_installs_root_and_signs_the_secc_certificate(station: StationDir) -> None:
    """From a store with no V2G root and no SECC certificate: --install-root and --sign."""
    _remove_v2g_roots(station)
    station.store().delete_leaf("v2g")
    answers = Answers(
        use_case=UseCase.PUBLIC,
        apply_preset=True,
        install_roots=(("v2g", station.pki / "v2g" / "root.pem"),),
        sign=("V2GCertificate",),
        seccid="DE*ABC*E1234567*1",
        organization="Test CPO",
        csms_timeout=10,
        sign_timeout=20,
    )
    report, csms = run(
        run_station(station, answers=answers, ca=lambda k, csr: v2g_chain_for(station.pki, csr))
    )
    results = by_name(report)
    assert results["provision.root[v2g]"].status is Status.PASS
    assert results["provision.sign[V2GCertificate]"].status is Status.PASS
    assert csms.csrs[0][0] == "V2GCertificate"
    leaf = station.store().leaf_chain("v2g")[0]
    cn = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
    assert cn == "DE*ABC*E1234567*1"
    assert results["certs.secc"].status is Status.PASS
    assert report.ready, report.markdown()


def test_private_mo_without_mo_root_and_unapplied_preset(station: StationDir) -> None:
    for path in (station.store_path / "trust" / "mo").glob("*.pem"):
        path.unlink()
    answers = Answers(use_case=UseCase.PRIVATE_MO, csms_timeout=10)
    report, _ = run(run_station(station, answers=answers))
    results = by_name(report)
    assert results["certs.mo-roots"].status is Status.FAIL
    assert "--install-root mo=" in results["certs.mo-roots"].fix
    assert results["pnc"].status is Status.FAIL
    assert "ContractCertificateInstallationEnabled is true" in results["pnc"].reason
    assert "--apply-preset" in results["pnc"].fix


def cli(station: StationDir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "secc.cli.main",
            "commission",
            "--config",
            str(station.config),
            "--state-dir",
            str(station.state),
            "--non-interactive",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_cli_exit_code_follows_readiness_and_writes_reports(station: StationDir) -> None:
    # no CSMS here (the config has no [ocpp]) and the machine's clock sync is not ours to
    # judge: run the checks that do not depend on either
    only = ["--only", "config", "--only", "hal", "--only", "certs", "--only", "pnc"]
    args = ["--use-case", "private-mo", "--apply-preset", *only]
    md, js = station.root / "report.md", station.root / "report.json"
    ok = cli(station, *args, "--report", str(md), "--json", str(js))
    # only a part was checked: the ones asked for passed, but that is no verdict (exit 3)
    assert ok.returncode == 3, ok.stdout + ok.stderr
    assert "READY for Plug & Charge" not in ok.stdout + md.read_text()
    assert "PARTIAL: the" in ok.stdout and "no Plug & Charge verdict" in ok.stdout
    assert "PASS HAL self-test" in ok.stdout  # plain lines when piped
    assert "\033[" not in ok.stdout
    data = json.loads(js.read_text())
    assert data["ready"] is False and data["verdict"] == "PARTIAL" and data["partial"] is True
    assert "clock" in data["notRun"] and "csms" in data["notRun"]
    assert "| PASS | SECC certificate and chain |" in md.read_text()
    assert "- not run: csms, start, clock" in md.read_text()
    _remove_v2g_roots(station)
    html = station.root / "report.html"
    bad = cli(station, *args, "--report", str(html))
    assert bad.returncode == 1
    assert "FAIL V2G root certificate(s): no V2G root certificate installed" in bad.stdout
    assert "fix: install the V2G root(s)" in bad.stdout
    assert "NOT READY" in html.read_text()
    usage = cli(station, "--install-root", "v2g")
    assert usage.returncode == 2 and "KIND=FILE" in usage.stderr


def test_answers_file_for_fleets(station: StationDir) -> None:
    answers = station.root / "answers.toml"
    answers.write_text(
        'use_case = "private-mo"\napply_preset = true\nhal_self_test = true\n'
        f'[install_roots]\nmo = "{station.pki / "mo" / "root.pem"}"\n'
    )
    only = ["--only", "config", "--only", "certs", "--only", "pnc", "--only", "provision"]
    done = cli(station, "--answers", str(answers), *only)
    assert done.returncode == 3, done.stdout + done.stderr  # partial: passed, no verdict
    assert "PASS install mo root" in done.stdout  # provisioning steps are listed too
    leaf = station.pki / "mo" / "contract.pem"
    refused = cli(station, "--answers", str(answers), *only, "--install-root", f"mo={leaf}")
    assert refused.returncode == 1
    assert f"FAIL install mo root {leaf}: not a CA certificate" in refused.stdout


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('use_case = "everything"\n', "'everything' is not a valid UseCase"),
        ('csms_timeout = "soon"\n', "csms_timeout must be float"),
        ("apply_preset = 1\n", "apply_preset must be bool"),
        ("sign = 3\n", "sign must be a list"),
        ('sign = ["Everything"]\n', "unknown certificate type 'Everything'"),
        ("seccid = 7\n", "seccid must be a string"),
        ("[install_roots]\nmo = 5\n", "install_roots.mo must be a file name"),
        ("install_roots = 1\n", "install_roots must be a table"),
        ("use_case = [\n", "cannot read the answers"),
        ('colour = "blue"\n', "unknown answer 'colour'"),
    ],
)
def test_bad_answers_are_usage_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    from secc.cli.commission import main

    answers = tmp_path / "answers.toml"
    answers.write_text(text)
    code = main(
        ["--config", str(tmp_path / "none.toml"), "--answers", str(answers)], "secc commission"
    )
    assert code == 2
    assert message in capsys.readouterr().err


def test_security_profile_3_with_and_without_the_station_certificate(station: StationDir) -> None:
    async def main(client_cert: bool) -> Report:
        if not client_cert:
            station.store().delete_leaf("csms")
        csms = TestCsms(password=None, ssl_context=server_context(station.pki, client_auth=True))
        await csms.start()
        station.write_config(csms.url.replace("127.0.0.1", "localhost"), profile=3)
        try:
            return await commission(Context(station.config, PRESET, deps()))
        finally:
            await csms.stop()

    report = run(main(True))
    assert report.ready, report.markdown()
    assert "station certificate" in by_name(report)["certs.csms"].reason
    assert "security profile 3" in by_name(report)["csms"].reason
    report = run(main(False))
    results = by_name(report)
    assert results["certs.csms"].status is Status.FAIL
    assert "--sign ChargingStationCertificate" in results["certs.csms"].fix
    assert results["csms"].status is Status.FAIL
    assert "needs a charging-station certificate" in results["csms"].reason


def test_password_from_the_config_file(station: StationDir) -> None:
    import dataclasses

    from secc.config import OcppSection

    if "basic_auth_password_file" not in {f.name for f in dataclasses.fields(OcppSection)}:
        pytest.skip("this config schema has no [ocpp] basic_auth_password_file")
    (station.state / "device_model.json").unlink()  # no password in the device model
    secret = station.root / "password"
    secret.write_text(PASSWORD + "\n")

    async def main(with_file: bool) -> Report:
        csms = TestCsms(password=PASSWORD)
        await csms.start()
        station.write_config(csms.url, profile=1)
        if with_file:
            text = station.config.read_text()
            station.config.write_text(text + f'basic_auth_password_file = "{secret}"\n')
        try:
            only = {"config", "csms"}
            return await commission(
                Context(station.config, PRESET, deps()), only=lambda c: c.name in only
            )
        finally:
            await csms.stop()

    refused = by_name(run(main(False)))["csms"]
    assert refused.status is Status.FAIL and "unreachable" in refused.reason
    accepted = by_name(run(main(True)))["csms"]
    assert accepted.status is Status.WARN and "accepted" in accepted.reason  # profile 1 warns
