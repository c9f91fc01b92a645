"""What an installer sees: a partial run (``--only``) never says READY, fixes through a
CSMS are offered only when one is configured, the progress line names the step that waits
for the CSMS, and the Markdown / HTML reports show texts as they are (an EVSE ID's ``*``
is not emphasis, a command in backticks is code)."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import socket
from typing import Any

from certs.store import Store
from secc.commission.context import Context, Deps
from secc.commission.model import Answers, Check, Outcome, UseCase
from secc.commission.report import Report
from secc.commission.runner import Progress, commission
from secc.commission.system import ClockSync
from tests.commission.conftest import EVSE_ID, PASSWORD, StationDir
from tests.commission.test_commission import cli
from tests.ocpp.conftest import server_context
from tests.ocpp.csms import TestCsms

SYNCED = ClockSync(True, "test: synchronised")
CSMS_TITLE = "CSMS reachable, security profile, BootNotification"


class Recorder(Progress):
    """Which step was running when the CSMS link was opened, and what it waited for."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.current = ""
        self.opened_during: list[str] = []
        self.waits: list[tuple[str, str]] = []
        self._closed_before = True

    def start(self, index: int, total: int, title: str) -> None:
        self.current = title
        self._closed_before = self.ctx.csms is None or self.ctx.csms.state is None

    def waiting(self, what: str) -> None:
        self.waits.append((self.current, what))

    def done(self, index: int, total: int, outcome: Outcome) -> None:
        opened = self.ctx.csms is not None and self.ctx.csms.state is not None
        if index and self._closed_before and opened:
            self.opened_during.append(outcome.title)


def _run(
    station: StationDir, answers: Answers, only: Any = None, csms: bool = True
) -> tuple[Report, Recorder]:
    async def main() -> tuple[Report, Recorder]:
        server = None
        if csms:
            server = TestCsms(
                password=PASSWORD, ssl_context=server_context(station.pki, client_auth=False)
            )
            await server.start()
            station.write_config(server.url.replace("127.0.0.1", "localhost"), profile=2)
        try:
            ctx = Context(station.config, answers, Deps(clock_sync=lambda: SYNCED))
            recorder = Recorder(ctx)
            report = await commission(ctx, only=only, progress=recorder)
        finally:
            if server is not None:
                await server.stop()
        return report, recorder

    return asyncio.run(asyncio.wait_for(main(), 60))


# --- the progress line ------------------------------------------------------------------------


def test_the_wait_for_the_csms_happens_under_the_csms_check(station: StationDir) -> None:
    answers = Answers(use_case=UseCase.PUBLIC, apply_preset=True, csms_timeout=10)
    report, rec = _run(station, answers)
    assert report.ready, report.markdown()
    assert rec.opened_during == [CSMS_TITLE]
    assert len(rec.waits) == 1 and rec.waits[0][0] == CSMS_TITLE
    assert rec.waits[0][1].startswith("connecting to the CSMS wss://localhost:")


def test_a_check_that_needs_the_csms_says_it_waits_for_it(station: StationDir) -> None:
    answers = Answers(use_case=UseCase.PUBLIC, csms_timeout=10)
    _, rec = _run(station, answers, only=lambda c: c.name == "clock")
    assert (
        rec.waits == [("System clock sane and synchronised", rec.waits[0][1])]
        and "connecting to the CSMS" in rec.waits[0][1]
    )


# --- --only -----------------------------------------------------------------------------------


def test_a_partial_run_is_never_ready(station: StationDir) -> None:
    def only(check: Check) -> bool:
        return check.name in {"config", "csms"}

    answers = Answers(use_case=UseCase.PUBLIC, csms_timeout=10)
    report, _ = _run(station, answers, only=only)
    assert not report.failed and report.partial and not report.ready
    assert report.verdict.startswith("PARTIAL") and "READY" not in report.verdict
    assert "clock" in report.not_run and "certs.secc" in report.not_run
    data = json.loads(report.json_text())
    assert data["ready"] is False and data["verdict"] == "PARTIAL"
    assert "READY for Plug" not in report.markdown() + report.html()


def test_only_with_a_name_that_matches_nothing_is_a_usage_error(station: StationDir) -> None:
    done = cli(station, "--only", "cert.secc", "--no-hal-self-test")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--only 'cert.secc' names no check" in done.stderr
    assert "certs.secc" in done.stderr


def test_cli_exit_status_of_a_partial_run(station: StationDir) -> None:
    passed = cli(station, "--only", "config")
    assert passed.returncode == 3, passed.stdout + passed.stderr
    assert "READY for" not in passed.stdout and "PARTIAL" in passed.stdout
    (station.store_path / "trust" / "v2g").mkdir(parents=True, exist_ok=True)
    for path in (station.store_path / "trust" / "v2g").glob("*.pem"):
        path.unlink()
    failed = cli(station, "--only", "certs.v2g-roots")
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "NOT READY" in failed.stdout


# --- fixes without a CSMS ---------------------------------------------------------------------

CSMS_ONLY = (
    "SignCertificate via",
    "--sign",
    "SetVariables",
    "SendLocalList",
    "InstallCertificate",
    "GetCertificateStatus",
    "`secc renew`",
    "see the csms check",
)


def _empty_store(station: StationDir) -> None:
    shutil.rmtree(station.store_path)
    station.store_path.mkdir()
    Store(station.store_path).initialize()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_fix_needs_a_csms_when_none_is_configured(station: StationDir) -> None:
    _empty_store(station)
    station.write_config()  # no [ocpp]
    for use_case in (UseCase.PRIVATE_MO, UseCase.PRIVATE_EMAID):
        answers = Answers(use_case=use_case, sign=("V2GCertificate",), hal_self_test=False)
        report, _ = _run(station, answers, csms=False)
        fixes = {o.name: o.result.fix for o in report.outcomes if o.result.fix}
        assert fixes["certs.v2g-roots"] and fixes["certs.secc"], fixes
        assert "provision.sign[V2GCertificate]" in fixes
        for name, fix in fixes.items():
            assert not any(word in fix for word in CSMS_ONLY), (use_case, name, fix)


def test_with_a_csms_configured_its_fixes_are_offered(station: StationDir) -> None:
    """The same broken store with an [ocpp] section: the fixes through the CSMS appear
    (the check above is not vacuous)."""
    _empty_store(station)
    station.write_config(f"ws://127.0.0.1:{_closed_port()}/ocpp", profile=1)
    answers = Answers(use_case=UseCase.PRIVATE_MO, hal_self_test=False, csms_timeout=2)
    report, _ = _run(station, answers, csms=False)
    fixes = {o.name: o.result.fix for o in report.outcomes}
    assert "InstallCertificate" in fixes["certs.v2g-roots"]
    assert "--sign V2GCertificate" in fixes["certs.secc"]


# --- report formats ---------------------------------------------------------------------------

_SPAN = re.compile(r"`[^`\n]+`")


def test_markdown_escapes_and_html_has_no_markdown(station: StationDir) -> None:
    _empty_store(station)
    station.write_config()
    answers = Answers(use_case=UseCase.PRIVATE_MO, hal_self_test=False)
    report, _ = _run(station, answers, csms=False)
    md = report.markdown()
    # the EVSE ID appears (HAL check, firmware list) escaped: no emphasis
    assert EVSE_ID.replace("*", "\\*") in md
    for line in md.splitlines():
        text = _SPAN.sub("", line)
        text = re.sub(r"^\*\*(.*)\*\*", r"\1", text)  # the verdict is bold on purpose
        assert not re.search(r"(?<!\\)[*_]", text), line
    # a fix with a command in backticks stays a code span in Markdown
    secc = next(o for o in report.outcomes if o.name == "certs.secc")
    assert "`secc certs install --leaf v2g chain.pem --key key.pem`" in secc.result.fix
    assert "`secc certs install --leaf v2g chain.pem --key key.pem`" in md
    page = report.html()
    assert "`" not in page
    assert "<code>secc certs install --leaf v2g chain.pem --key key.pem</code>" in page
    assert EVSE_ID in page
