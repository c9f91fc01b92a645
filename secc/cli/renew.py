"""``secc renew``: certificate maintenance (the secc-renew.timer job).

Renews the SECC certificates (the ISO 15118-2 one and the ISO 15118-20 one, with a P-521
key) and the charging-station certificate when due (SignCertificate through the CSMS,
then CertificateSigned, verified before and after installation with the checks of
``secc run``'s OCPP client (A02.FR.06); the old chain stays in service otherwise; a new
charging-station certificate on a profile-3 link is tried by reconnecting and the old one
comes back if it does not connect, as ``secc run`` does: A02.FR.10/28/29), refreshes the
SECC chain's OCSP answers, warns ahead of trust-anchor expiry.  ``--local-only`` does
not connect to the CSMS (for stations where ``secc run`` owns the OCPP link and renews
in-process): it reports and warns.

Exit status: 0 nothing left to do; 1 something is expired, a trust anchor expires within
the warning window, or (online) a due renewal or the CSMS link failed; 2 usage error.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import logging
import sys
from pathlib import Path

from certs.store import Store, StoreError
from secc.cli._help import summary
from secc.commission.csms import CsmsLink, ocpp_state_dir
from secc.config import DEFAULT_PATH, load_file
from secc.errors import ConfigError
from secc.maintenance import (
    CsrSubject,
    MaintenanceReport,
    SignedInstaller,
    attach_trial,
    plan,
    run_maintenance,
)
from secc.ocpp_bridge.device_model import DeviceModel, iso15118_defaults


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=summary(__doc__))
    p.add_argument("--config", type=Path, default=DEFAULT_PATH)
    p.add_argument("--local-only", action="store_true", help="report and warn; no CSMS")
    p.add_argument("--renew-before-days", type=int, default=30)
    p.add_argument("--anchor-warn-days", type=int, default=90)
    p.add_argument("--timeout", type=float, default=120.0, help="wait for CertificateSigned (s)")
    p.add_argument("--csms-timeout", type=float, default=30.0, help="wait for the CSMS (s)")
    p.add_argument("--state-dir", type=Path, help="secc run's state (device model)")
    p.add_argument("--json", action="store_true", help="print the outcome as JSON")
    return p


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _online(
    args: argparse.Namespace, store: Store, dm: DeviceModel, station: str, evse_id: str
) -> MaintenanceReport | str:
    config = load_file(args.config)
    assert config.ocpp is not None
    # the checks and the client certificate's trial of secc run's bridge (A02)
    installer = SignedInstaller(
        store, _now, subject=lambda: CsrSubject.of_device_model(dm, station, evse_id)
    )
    link = CsmsLink(config.ocpp, store, dm, installer)
    outbox = attach_trial(installer, link.client, dm, args.state_dir or ocpp_state_dir(config.ocpp))
    try:
        state = await link.connect(args.csms_timeout)
        if state.boot_status != "Accepted":
            return f"CSMS link: {state.detail}"
        subject = CsrSubject.of_device_model(dm, station, evse_id)
        return await run_maintenance(
            link.client,
            store,
            installer,
            subject,
            _now,
            renew_before_days=args.renew_before_days,
            anchor_warn_days=args.anchor_warn_days,
            sign_timeout=args.timeout,
        )
    finally:
        await link.aclose()
        outbox.close()


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_file(args.config)
    except ConfigError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if config.certs.store is None:
        print(f"{prog}: error: no [certs] store in {args.config}", file=sys.stderr)
        return 2
    try:
        store = Store(config.certs.store, key_password_file=config.certs.key_password_file)
        store.initialize()
    except (StoreError, OSError) as exc:
        print(f"{prog}: error: certificate store: {exc}", file=sys.stderr)
        return 1
    due = plan(
        store,
        _now(),
        renew_before_days=args.renew_before_days,
        anchor_warn_days=args.anchor_warn_days,
    )
    if args.local_only or config.ocpp is None:
        report = MaintenanceReport(due)
        lines = report.lines()
        lines += [f"due for renewal: {t} (secc run renews it over OCPP)" for t in due.renew]
        lines += [f"OCSP {s.label}: {s.state}" for s in due.ocsp if s.state in {"missing", "stale"}]
        failed = bool(due.expired or due.anchors_expiring)
        errors: list[str] = []
    else:
        state_dir = args.state_dir or ocpp_state_dir(config.ocpp)
        dm = DeviceModel(state_dir / "device_model.json", initial=iso15118_defaults(config.ocpp))
        outcome = asyncio.run(
            _online(args, store, dm, config.ocpp.station_id, config.evse[0].evse_id)
        )
        if isinstance(outcome, str):
            report, errors = MaintenanceReport(due), [outcome]
        else:
            report, errors = outcome, []
        lines = report.lines() + [f"ERROR {e}" for e in errors]
        failed = bool(errors) or not report.ok or bool(due.anchors_expiring)
    if args.json:
        print(
            json.dumps(
                {
                    "ok": not failed,
                    "renewals": [
                        {"type": o.certificate_type, "accepted": o.accepted, "reason": o.reason}
                        for o in report.renewals
                    ],
                    "due": list(due.renew),
                    "expired": [e.to_json() for e in due.expired],
                    "anchorsExpiring": [e.to_json() for e in due.anchors_expiring],
                    "ocsp": {s.label: s.state for s in due.ocsp},
                    "ocspRefreshed": report.ocsp_stored,
                    "errors": errors + report.errors,
                },
                indent=2,
            )
        )
    else:
        for line in lines or ["nothing due"]:
            print(line)
    return 1 if failed else 0
