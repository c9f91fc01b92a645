"""The commissioning report: JSON for fleets, Markdown or HTML for people."""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from secc import __version__
from secc.commission.context import Context
from secc.commission.model import Outcome, Status

MARK = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


@dataclass(frozen=True, slots=True)
class InventoryItem:
    label: str
    subject: str
    issuer: str
    not_before: str
    not_after: str
    days_left: int
    sha256: str
    sha1: str

    def to_json(self) -> dict[str, object]:
        return {
            "label": self.label,
            "subject": self.subject,
            "issuer": self.issuer,
            "notBefore": self.not_before,
            "notAfter": self.not_after,
            "daysLeft": self.days_left,
            "sha256": self.sha256,
            "sha1": self.sha1,
        }


def _item(label: str, cert: x509.Certificate, now: dt.datetime) -> InventoryItem:
    return InventoryItem(
        label,
        cert.subject.rfc4514_string(),
        cert.issuer.rfc4514_string(),
        cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        (cert.not_valid_after_utc - now).days,
        cert.fingerprint(hashes.SHA256()).hex(),
        cert.fingerprint(hashes.SHA1()).hex(),  # noqa: S303 - an identifier, as OCPP shows it
    )


@dataclass(frozen=True, slots=True)
class Report:
    generated: str
    config_path: str
    config_digest: str
    use_case: str
    station: str
    outcomes: tuple[Outcome, ...]
    inventory: tuple[InventoryItem, ...]
    firmware: tuple[tuple[str, str], ...]
    software: str = f"secc {__version__}"
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ready(self) -> bool:
        """Plug & Charge ready: every step ran and none FAILed."""
        return bool(self.outcomes) and all(
            o.result.status is not Status.FAIL for o in self.outcomes
        )

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "verdict": "READY" if self.ready else "NOT READY",
            "generated": self.generated,
            "station": self.station,
            "useCase": self.use_case,
            "software": self.software,
            "config": {"path": self.config_path, "sha256": self.config_digest},
            "counts": self.counts,
            "checks": [o.to_json() for o in self.outcomes],
            "certificates": [i.to_json() for i in self.inventory],
            "firmware": dict(self.firmware),
        }

    def json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2) + "\n"

    def markdown(self) -> str:
        verdict = "READY for Plug & Charge" if self.ready else "NOT READY"
        out = [
            f"# Commissioning report: {self.station}",
            "",
            f"**{verdict}** ({_counts(self.counts)})",
            "",
            f"- generated: {self.generated}",
            f"- use case: {self.use_case}",
            f"- software: {self.software}",
            f"- config: `{self.config_path}` (SHA-256 `{self.config_digest}`)",
            "",
            "## Checks",
            "",
            "| status | check | result | fix |",
            "| --- | --- | --- | --- |",
        ]
        for o in self.outcomes:
            r = o.result
            out.append(f"| {MARK[r.status]} | {_md(o.title)} | {_md(r.reason)} | {_md(r.fix)} |")
        out += ["", "## Certificates", ""]
        if self.inventory:
            out += [
                "| slot | subject | issuer | expires | days | SHA-256 |",
                "| --- | --- | --- | --- | --- | --- |",
            ]
            for i in self.inventory:
                out.append(
                    f"| {i.label} | {_md(i.subject)} | {_md(i.issuer)} | {i.not_after} | "
                    f"{i.days_left} | `{i.sha256}` |"
                )
        else:
            out.append("No certificate store.")
        out += ["", "## Firmware", ""]
        out += [f"- {_md(k)}: {_md(v)}" for k, v in self.firmware] or ["- none reported"]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        e = html.escape
        verdict = "READY for Plug &amp; Charge" if self.ready else "NOT READY"
        rows = "".join(
            f"<tr class='{o.result.status.lower()}'><td>{o.result.status}</td><td>{e(o.title)}</td>"
            f"<td>{e(o.result.reason)}</td><td>{e(o.result.fix)}</td></tr>"
            for o in self.outcomes
        )
        certs = "".join(
            f"<tr><td>{e(i.label)}</td><td>{e(i.subject)}</td><td>{e(i.issuer)}</td>"
            f"<td>{i.not_after}</td><td>{i.days_left}</td><td><code>{i.sha256}</code></td></tr>"
            for i in self.inventory
        )
        firmware = "".join(f"<li>{e(k)}: {e(v)}</li>" for k, v in self.firmware)
        return (
            "<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>Commissioning report {e(self.station)}</title><style>"
            "body{font-family:sans-serif}td{border:1px solid #ccc;padding:2px 6px}"
            "tr.fail{background:#fdd}tr.warn{background:#ffd}tr.pass{background:#dfd}"
            "</style></head><body>"
            f"<h1>Commissioning report: {e(self.station)}</h1>"
            f"<p><b>{verdict}</b> ({e(_counts(self.counts))})</p><ul>"
            f"<li>generated: {e(self.generated)}</li><li>use case: {e(self.use_case)}</li>"
            f"<li>software: {e(self.software)}</li><li>config: <code>{e(self.config_path)}"
            f"</code> SHA-256 <code>{self.config_digest}</code></li></ul>"
            "<h2>Checks</h2><table><tr><th>status</th><th>check</th><th>result</th>"
            f"<th>fix</th></tr>{rows}</table>"
            "<h2>Certificates</h2><table><tr><th>slot</th><th>subject</th><th>issuer</th>"
            f"<th>expires</th><th>days</th><th>SHA-256</th></tr>{certs}</table>"
            f"<h2>Firmware</h2><ul>{firmware}</ul></body></html>\n"
        )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def build_report(ctx: Context, outcomes: list[Outcome]) -> Report:
    now = ctx.utc_now()
    inventory: tuple[InventoryItem, ...] = ()
    if ctx.store is not None:
        inventory = tuple(_item(label, c, now) for label, c in ctx.store.all_certificates())
    station = ctx.config_path.name
    if ctx.config is not None:
        station = ctx.config.ocpp.station_id if ctx.config.ocpp else ctx.config.station.name
    counts = {s.value: sum(o.result.status is s for o in outcomes) for s in Status}
    return Report(
        generated=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
        config_path=str(ctx.config_path),
        config_digest=ctx.config_digest,
        use_case=str(ctx.answers.use_case),
        station=station,
        outcomes=tuple(outcomes),
        inventory=inventory,
        firmware=tuple(sorted(ctx.firmware.items())),
        counts=counts,
    )
