"""Checks of the CSMS link, the certificates and the Plug & Charge settings."""

from __future__ import annotations

from cryptography import x509

from certs._util import der, domain_component
from certs.store import StoreError, is_iso20_use
from certs.validate import validate_chain
from secc.commission.context import Context
from secc.commission.model import Check, Result, UseCase
from secc.maintenance import ocsp_states
from secc.ocpp_bridge.authorization import AuthStore

NO_STORE = Result.fail(
    "no certificate store: no TLS, no Plug & Charge",
    'set [certs] store = "/var/lib/secc/certs" and install the station\'s certificates',
)


# without a CSMS the station's certificates come from files: a CSR, your CA, the chain
NEW_SECC_LOCALLY = "`secc certs csr`, have it signed, then `secc certs install --leaf v2g`"
NEW_SECC20_LOCALLY = (
    "a P-521 key and CSR, have it signed under your ISO 15118-20 V2G root, then "
    "`secc certs install --leaf v2g20 chain.pem --key key.pem`"
)


def _fix(ctx: Context, csms: str, local: str) -> str:
    """A fix through the CSMS, offered only when an [ocpp] section configures one."""
    return f"{csms}, or {local}" if ctx.has_csms else local


def _days(ctx: Context, cert: x509.Certificate) -> int:
    return (cert.not_valid_after_utc - ctx.utc_now()).days


async def check_csms(ctx: Context) -> Result:
    cfg = ctx.config
    assert cfg is not None
    if cfg.ocpp is None:
        if ctx.answers.use_case is UseCase.PUBLIC:
            return Result.fail(
                "no [ocpp] section: public Plug & Charge needs a CSMS",
                "add [ocpp] url, station_id and security_profile to the config",
            )
        return Result.skip("no [ocpp] section: local authorization only")
    ocpp = cfg.ocpp
    secure = ocpp.url.startswith("wss://")
    if ocpp.security_profile >= 2 and not secure:
        return Result.fail(
            f"security profile {ocpp.security_profile} needs a wss:// URL, not {ocpp.url}",
            "use the CSMS's wss:// endpoint or the profile the CSMS was set up for",
        )
    link = await ctx.link()
    assert link is not None
    where = f"{ocpp.url} as {ocpp.station_id}"
    if not link.reachable:
        return Result.fail(
            f"CSMS {where} unreachable: {link.detail}",
            "check the URL, DNS and firewall; profile 2/3: the CSMS root in the store; "
            "profile 3: the charging-station certificate; make sure `secc run` is stopped "
            "(a CSMS keeps one connection per station)",
        )
    if link.boot_status == "Rejected":
        return Result.fail(
            f"the CSMS refused BootNotification (Rejected) from {where}",
            f"register station {ocpp.station_id!r} in the CSMS (with its password for "
            "profiles 1 and 2), then run again",
        )
    if link.boot_status == "Pending":
        return Result.fail(
            f"the CSMS answered BootNotification Pending for {where}",
            "accept the station in the CSMS back office, then run again",
        )
    if link.boot_status != "Accepted":
        return Result.fail(
            f"{where}: {link.detail}", "check the CSMS's logs for this station's connection"
        )
    if ocpp.security_profile == 1:
        return Result.warn(
            f"BootNotification accepted by {where}, security profile 1 (no TLS)",
            "use security profile 2 or 3: with profile 1 credentials travel in clear",
            profile=1,
        )
    return Result.ok(
        f"BootNotification accepted by {where}, security profile {ocpp.security_profile}",
        profile=ocpp.security_profile,
    )


async def check_csms_certificates(ctx: Context) -> Result:
    cfg = ctx.config
    assert cfg is not None
    if cfg.ocpp is None or cfg.ocpp.security_profile == 1:
        return Result.skip("no TLS to the CSMS (no [ocpp] or security profile 1)")
    if ctx.store is None:
        return NO_STORE
    roots = ctx.store.roots("csms")
    if not roots:
        return Result.fail(
            "no CSMS root certificate: the CSMS's TLS certificate cannot be verified",
            "install it: secc commission --install-root csms=FILE",
        )
    if cfg.ocpp.security_profile < 3:
        return Result.ok(f"{len(roots)} CSMS root(s)")
    try:
        leaf = ctx.store.leaf_chain("csms")[0]
    except StoreError:
        return Result.fail(
            "security profile 3 and no charging-station certificate",
            "secc commission --sign ChargingStationCertificate (SignCertificate via the CSMS), "
            "or install the manufacturer's certificate with `secc certs install --leaf csms`",
        )
    days = _days(ctx, leaf)
    if days < 0:
        return Result.fail(
            f"the charging-station certificate expired on {leaf.not_valid_after_utc:%Y-%m-%d}",
            "secc commission --sign ChargingStationCertificate (check the clock first)",
        )
    if days <= ctx.answers.renew_before_days:
        return Result.warn(
            f"charging-station certificate expires in {days} days", "secc renew", days=days
        )
    return Result.ok(f"{len(roots)} CSMS root(s); station certificate, {days} days left", days=days)


async def check_v2g_roots(ctx: Context) -> Result:
    if ctx.store is None:
        return NO_STORE
    roots = ctx.store.roots("v2g")
    if not roots:
        return Result.fail(
            "no V2G root certificate installed: no EV can validate the station",
            "install the V2G root(s) of your PKI: secc commission --install-root v2g=FILE"
            + (", or InstallCertificate(V2GRootCertificate) from the CSMS" if ctx.has_csms else ""),
        )
    soonest = min(roots, key=lambda c: c.not_valid_after_utc)
    days = _days(ctx, soonest)
    name = soonest.subject.rfc4514_string()
    if days < 0:
        return Result.fail(
            f"V2G root {name} expired on {soonest.not_valid_after_utc:%Y-%m-%d}",
            "install its successor and a SECC certificate under it; check the clock",
        )
    if days <= ctx.answers.anchor_warn_days:
        return Result.warn(
            f"V2G root {name} expires in {days} days",
            "install its successor root and renew the SECC certificate under it",
            days=days,
        )
    return Result.ok(f"{len(roots)} V2G root(s), the first to expire in {days} days", days=days)


async def check_secc_certificate(ctx: Context) -> Result:
    store = ctx.store
    if store is None:
        return NO_STORE
    uses = [u for u in store.leaf_uses() if u != "csms"]  # v2g, v2g.<label>, v2g20[.<label>]
    if not uses:
        return Result.fail(
            "no SECC certificate installed: no TLS, no Plug & Charge",
            _fix(
                ctx,
                "secc commission --sign V2GCertificate (SignCertificate via the CSMS)",
                "`secc certs install --leaf v2g chain.pem --key key.pem`",
            ),
        )
    summaries = []
    due: list[str] = []
    locals_due: list[str] = []
    for use in uses:
        chain = store.leaf_chain(use)
        leaf = chain[0]
        iso20 = is_iso20_use(use)  # the -20 chain: a -20 V2G root, P-521/SHA-512 or Ed448
        sign = "V2GCertificate20" if iso20 else "V2GCertificate"
        local = NEW_SECC20_LOCALLY if iso20 else NEW_SECC_LOCALLY
        verdict = validate_chain(
            der(leaf),
            [der(c) for c in chain[1:]],
            store.roots_for("v2g", iso20=iso20),
            ctx.utc_now(),
            profile="secc",
            suite="iso20" if iso20 else "iso2",
        )
        if verdict.response_code == "FAILED_CertificateExpired":
            expired = [c for c in chain if c.not_valid_after_utc < ctx.utc_now()]
            when = expired[0].not_valid_after_utc if expired else leaf.not_valid_after_utc
            return Result.fail(
                f"SECC certificate ({use}) expired on {when:%Y-%m-%d}: {verdict.reason}",
                "renew it: "
                + _fix(ctx, f"secc commission --sign {sign} (or `secc renew`)", local)
                + "; if the date looks wrong, fix the clock first",
            )
        if not verdict.ok:
            return Result.fail(
                f"SECC chain ({use}) does not validate: {verdict.response_code}: {verdict.reason}",
                "install a chain (leaf + sub-CAs) that ends at an installed "
                + ("ISO 15118-20 V2G root (P-521/SHA-512 or Ed448)" if iso20 else "V2G root"),
            )
        if domain_component(leaf.subject) != "CPO":
            return Result.fail(
                f"SECC certificate ({use}) lacks DC=CPO: {leaf.subject.rfc4514_string()}",
                "request a SECC certificate with DC=CPO: "
                + _fix(ctx, f"secc commission --sign {sign}", local),
            )
        days = _days(ctx, leaf)
        if days <= ctx.answers.renew_before_days:
            due.append(f"{use} expires in {days} days")
            locals_due.append(local)
        summaries.append(f"{use}: {leaf.subject.rfc4514_string()}, {days} days left")
    if due:
        return Result.warn(
            "; ".join(summaries),
            f"renewal due ({', '.join(due)}): "
            + ("`secc renew`" if ctx.has_csms else "; ".join(dict.fromkeys(locals_due))),
        )
    return Result.ok("; ".join(summaries))


async def check_ocsp(ctx: Context) -> Result:
    if ctx.store is None:
        return NO_STORE
    states = ocsp_states(ctx.store, ctx.utc_now())
    revoked = [s for s in states if s.state == "revoked"]
    if revoked:
        return Result.fail(
            f"revoked: {revoked[0].subject} ({revoked[0].detail})",
            "a new SECC certificate: "
            + _fix(ctx, "secc commission --sign V2GCertificate", NEW_SECC_LOCALLY),
        )
    with_responder = [s for s in states if s.state != "no responder"]
    if not with_responder:
        return Result.ok("the SECC chain names no OCSP responder")
    missing = [s for s in with_responder if s.state in {"missing", "stale"}]
    if missing:
        text = "; ".join(f"{s.label} {s.state}" for s in missing)
        fix = (
            "`secc renew` fetches them (GetCertificateStatus through the CSMS)"
            if ctx.has_csms
            else "none without a CSMS: the station gets OCSP answers through OCPP only"
        )
        if ctx.answers.ocsp_required:
            return Result.fail(f"OCSP answers not fresh: {text}", fix)
        return Result.warn(f"OCSP answers not fresh: {text}", fix)
    return Result.ok(f"{len(with_responder)} fresh OCSP answer(s)")


async def check_mo_roots(ctx: Context) -> Result:
    if ctx.store is None:
        return NO_STORE
    roots = ctx.store.roots("mo")
    preset = ctx.answers.preset()
    if not roots and preset.needs_mo_root:
        return Result.fail(
            f"use case {preset.use_case}: contracts are validated locally, and no MO root "
            "is installed",
            "install the facility's MO root: secc commission --install-root mo=FILE",
        )
    if not roots:
        offline = ctx.dm is not None and ctx.dm.flag("ISO15118Ctrlr", "ContractValidationOffline")
        if offline:
            return Result.warn(
                "no MO roots: contracts cannot be validated while the CSMS is unreachable",
                "install the MO roots of the operators you accept, or set "
                "ISO15118Ctrlr.ContractValidationOffline to false",
            )
        if not ctx.has_csms:
            return Result.warn(
                "no MO roots and no CSMS: only contracts issued under an installed V2G root "
                "can be validated",
                "install the MO roots of the operators you accept: "
                "secc commission --install-root mo=FILE",
            )
        return Result.ok("no MO roots (contracts are validated by the CSMS)")
    names = ", ".join(r.subject.rfc4514_string() for r in roots)
    return Result.ok(f"{len(roots)} MO root(s): {names}")


async def check_pnc(ctx: Context) -> Result:
    cfg, dm = ctx.config, ctx.dm
    assert cfg is not None and dm is not None
    preset = ctx.answers.preset()
    for evse in cfg.evse:
        if not evse.pnc:
            return Result.fail(
                f"{evse.evse_id}: pnc = false in the config",
                "set pnc = true in its [[evse]] section",
            )
        if evse.tls_port == -1:
            return Result.fail(
                f"{evse.evse_id}: tls_port = -1: no TLS, hence no Plug & Charge",
                "set tls_port = 0 (any free port) or a port number",
            )
    wrong = [
        f"{c}.{v} is {dm.value(c, v)}, use case {preset.use_case} needs {want}"
        for c, v, want in preset.variables
        if dm.value(c, v) != want
    ]
    if wrong:
        return Result.fail(
            "; ".join(wrong),
            f"secc commission --use-case {preset.use_case} --apply-preset (sets the variables)"
            + (", or SetVariables from the CSMS" if ctx.has_csms else ""),
        )
    if preset.needs_local_list:
        path = ctx.state_dir() / "auth.sqlite"
        entries = 0
        if path.exists():
            auth = AuthStore(path)
            try:
                entries = auth.list_entries()
            finally:
                auth.close()
        if entries == 0:
            return Result.fail(
                "no eMAIDs in the local authorization list",
                "send them from the CSMS with SendLocalList (idToken type eMAID)"
                if ctx.has_csms
                else "the local list comes from a CSMS (SendLocalList): without [ocpp], use "
                "--use-case private-mo (the facility's MO root) instead",
            )
        return Result.ok(f"{preset.description}; {entries} local list entries")
    return Result.ok(preset.description)


def pki_checks(ctx: Context) -> list[Check]:
    del ctx
    return [
        Check("csms", "CSMS reachable, security profile, BootNotification", check_csms),
        Check("certs.csms", "CSMS root and charging-station certificate", check_csms_certificates),
        Check("certs.v2g-roots", "V2G root certificate(s)", check_v2g_roots),
        Check("certs.secc", "SECC certificate and chain", check_secc_certificate),
        Check("certs.ocsp", "OCSP answers for the SECC chain", check_ocsp),
        Check("certs.mo-roots", "MO root certificates", check_mo_roots),
        Check("pnc", "Plug & Charge enablement for the use case", check_pnc),
    ]
