"""Provisioning on request, then every check in order, with a progress callback."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from certs.store import KIND_OF_OCPP_TYPE, InstallRefused, StoreError
from secc.commission.context import Context
from secc.commission.model import Check, Outcome, Result, Status
from secc.commission.pki_checks import pki_checks
from secc.commission.report import Report, build_report
from secc.commission.station_checks import station_checks
from secc.maintenance import request_certificate
from secc.ocpp_bridge.device_model import ISO

log = logging.getLogger(__name__)
ROOT_KINDS = set(KIND_OF_OCPP_TYPE.values())


class Progress:
    """Told about each step; the CLI prints, tests collect."""

    def start(self, index: int, total: int, title: str) -> None:
        pass

    def done(self, index: int, total: int, outcome: Outcome) -> None:
        pass

    def waiting(self, what: str) -> None:
        """The step last started waits for something slow (``what``: the CSMS)."""


def all_checks(ctx: Context) -> list[Check]:
    """Every check in order.  The CSMS check runs right after the configuration: it opens
    the link the clock check (the CSMS's time) and the certificate checks use, so the
    wait for the CSMS happens under its own name."""
    checks = station_checks(ctx) + pki_checks(ctx)
    csms = [c for c in checks if c.name == "csms"]
    rest = [c for c in checks if c.name != "csms"]
    return rest[:1] + csms + rest[1:]


async def provision(ctx: Context, progress: Progress | None = None) -> list[Outcome]:
    """The provisioning steps the answers ask for; each becomes an outcome in the report."""
    out: list[Outcome] = []
    progress = progress or Progress()

    def note(name: str, title: str, result: Result, started: float) -> None:
        out.append(Outcome(name, title, result, time.monotonic() - started))
        ctx.log.append(f"{result.status} {title}: {result.reason}")

    answers = ctx.answers
    for kind, path in answers.install_roots:
        started = time.monotonic()
        title = f"install {kind} root {path}"
        progress.start(0, 0, title)
        if ctx.store is None:
            note(f"provision.root[{kind}]", title, Result.fail("no certificate store", ""), started)
            continue
        try:
            if kind not in ROOT_KINDS:
                raise InstallRefused(
                    f"unknown root kind {kind!r} ({', '.join(sorted(ROOT_KINDS))})"
                )
            installed = ctx.store.install_root(kind, Path(path).read_bytes(), utc_now=ctx.utc_now())
            result = Result.ok(f"installed as {installed.name}")
        except (InstallRefused, StoreError, OSError) as exc:
            result = Result.fail(str(exc), "give the PEM file of a valid CA certificate")
        note(f"provision.root[{kind}]", title, result, started)
    if answers.apply_preset and ctx.dm is not None:
        started = time.monotonic()
        preset = answers.preset()
        progress.start(0, 0, f"set the variables of use case {preset.use_case}")
        values = list(preset.variables)
        if answers.seccid:
            values.append((ISO, "SeccId", answers.seccid))
        if answers.organization:
            values.append((ISO, "OrganizationName", answers.organization))
        if answers.country:
            values.append((ISO, "CountryName", answers.country))
        try:
            ctx.state_dir().mkdir(parents=True, exist_ok=True)
            for component, variable, value in values:
                ctx.dm.set_local(component, variable, value)
            result = Result.ok(", ".join(f"{c}.{v}={x}" for c, v, x in values))
        except (ValueError, OSError) as exc:
            result = Result.fail(str(exc), "correct the answers")
        note(
            "provision.preset", f"set the variables of use case {preset.use_case}", result, started
        )
    for certificate_type in answers.sign:
        started = time.monotonic()
        title = f"SignCertificate({certificate_type})"
        progress.start(0, 0, title)
        if not ctx.has_csms:
            leaf = {"V2GCertificate": "v2g", "V2GCertificate20": "v2g20"}.get(
                certificate_type, "csms"
            )
            note(
                f"provision.sign[{certificate_type}]",
                title,
                Result.fail(
                    "no [ocpp] section: SignCertificate needs a CSMS",
                    f"make a CSR (`secc certs csr`), have it signed by your CA and install "
                    f"the chain (`secc certs install --leaf {leaf}`)",
                ),
                started,
            )
            continue
        link = await ctx.link() if ctx.store is not None else None
        if link is None or link.boot_status != "Accepted" or ctx.installer is None:
            why = "no certificate store" if ctx.store is None else "no accepted CSMS link"
            note(
                f"provision.sign[{certificate_type}]",
                title,
                Result.fail(why, "see the csms check"),
                started,
            )
            continue
        assert ctx.csms is not None
        subject = ctx.csr_subject()
        ctx.csms.refused.pop(certificate_type, None)
        outcome = await request_certificate(
            ctx.csms.client,
            ctx.store,  # type: ignore[arg-type]
            ctx.installer,
            certificate_type,
            common_name=subject.common_name(certificate_type),
            organization=subject.organization_of(certificate_type),
            country=subject.country,
            timeout=answers.sign_timeout,
        )
        refused = ctx.csms.refused.get(certificate_type)
        if outcome.accepted:
            result = Result.ok(outcome.reason)
        elif refused is not None:
            result = _refused(ctx, certificate_type, outcome.reason, refused)
        else:
            result = Result.fail(outcome.reason, "see the CSMS's logs; the previous chain is kept")
        note(f"provision.sign[{certificate_type}]", title, result, started)
    return out


def _refused(ctx: Context, certificate_type: str, reason: str, chain_pem: str) -> Result:
    """A CertificateSigned the station refused (the checks of OCPP A02.FR.06 / A03.FR.06
    that ``secc run`` makes): nothing was installed; the chain is kept in a file for
    whoever runs the CA."""
    path = ctx.state_dir() / f"refused-{certificate_type}.pem"
    try:
        path.write_text(chain_pem, encoding="ascii", errors="replace")
        where = f"the refused chain is in {path}"
    except OSError as exc:
        where = f"the refused chain could not be kept in {path}: {exc}"
    return Result.fail(
        f"CertificateSigned({certificate_type}) refused by the checks `secc run` makes "
        f"(OCPP A02.FR.06): {reason}; nothing was installed, {where}",
        "have the CA issue the certificate the CSR asked for (its subject; a "
        "ChargingStationCertificate under the installed CSMS root, a V2G certificate under "
        "the V2G root), then run --sign again",
        file=str(path),
    )


async def commission(
    ctx: Context,
    *,
    only: Callable[[Check], bool] | None = None,
    progress: Progress | None = None,
) -> Report:
    """Load, provision, check; the report says READY when no step FAILed."""
    progress = progress or Progress()
    ctx.load()
    outcomes: list[Outcome] = []
    not_run: list[str] = []
    ctx.waiting = progress.waiting
    try:
        if ctx.config is not None:
            for outcome in await provision(ctx, progress):
                outcomes.append(outcome)
                progress.done(0, 0, outcome)
        every = all_checks(ctx)
        checks = [c for c in every if only is None or only(c)]
        not_run = [c.name for c in every if c not in checks]
        for i, check in enumerate(checks, 1):
            progress.start(i, len(checks), check.title)
            started = time.monotonic()
            if ctx.config is None and check.name != "config":
                result = Result.skip("the configuration is not valid")
            else:
                result = await _run(check, ctx)
            outcome = Outcome(check.name, check.title, result, time.monotonic() - started)
            outcomes.append(outcome)
            progress.done(i, len(checks), outcome)
    finally:
        await ctx.aclose()
    return build_report(ctx, outcomes, not_run=tuple(not_run))


async def _run(check: Check, ctx: Context) -> Result:
    try:
        return await check.run(ctx)
    except Exception as exc:  # one broken check must not lose the whole report
        log.exception("check %s crashed", check.name)
        return Result(
            Status.FAIL,
            f"the check crashed: {type(exc).__name__}: {exc}",
            "report this as a bug in secc with the log above",
        )
