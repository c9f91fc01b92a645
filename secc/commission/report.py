"""The commissioning report: JSON for fleets, Markdown or HTML for people."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
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
    not_run: tuple[str, ...] = ()  # checks left out (--only): no readiness verdict then

    @property
    def failed(self) -> bool:
        return any(o.result.status is Status.FAIL for o in self.outcomes)

    @property
    def partial(self) -> bool:
        """Only some checks ran: the report cannot say the station is ready."""
        return bool(self.not_run)

    @property
    def ready(self) -> bool:
        """Plug & Charge ready: every check ran and none FAILed."""
        return bool(self.outcomes) and not self.partial and not self.failed

    @property
    def verdict(self) -> str:
        if self.ready:
            return "READY for Plug & Charge"
        if self.partial and not self.failed:
            ran = len(self.outcomes)
            return (
                f"PARTIAL: the {ran} step(s) asked for passed; {len(self.not_run)} check(s) "
                "not run, so no Plug & Charge verdict"
            )
        return "NOT READY"

    def to_json(self) -> dict[str, object]:
        return {
            "ready": self.ready,
            "verdict": "READY"
            if self.ready
            else ("PARTIAL" if self.partial and not self.failed else "NOT READY"),
            "partial": self.partial,
            "notRun": list(self.not_run),
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
        out = [
            f"# Commissioning report: {_md(self.station)}",
            "",
            f"**{_md(self.verdict)}** ({_counts(self.counts)})",
            "",
            f"- generated: {self.generated}",
            f"- use case: {_md(self.use_case)}",
            f"- software: {_md(self.software)}",
            f"- config: {_code(self.config_path)} (SHA-256 `{self.config_digest}`)",
        ]
        if self.not_run:
            out.append(f"- not run: {_md(', '.join(self.not_run))}")
        out += [
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
                    f"| {_md(i.label)} | {_md(i.subject)} | {_md(i.issuer)} | {i.not_after} | "
                    f"{i.days_left} | `{i.sha256}` |"
                )
        else:
            out.append("No certificate store.")
        out += ["", "## Firmware", ""]
        out += [f"- {_md(k)}: {_md(v)}" for k, v in self.firmware] or ["- none reported"]
        return "\n".join(out) + "\n"

    def html(self) -> str:
        e = _html
        verdict = e(self.verdict)
        not_run = f"<li>not run: {e(', '.join(self.not_run))}</li>" if self.not_run else ""
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
            f"<li>software: {e(self.software)}</li><li>config: <code>"
            f"{html.escape(self.config_path)}</code> SHA-256 <code>{self.config_digest}</code>"
            f"</li>{not_run}</ul>"
            "<h2>Checks</h2><table><tr><th>status</th><th>check</th><th>result</th>"
            f"<th>fix</th></tr>{rows}</table>"
            "<h2>Certificates</h2><table><tr><th>slot</th><th>subject</th><th>issuer</th>"
            f"<th>expires</th><th>days</th><th>SHA-256</th></tr>{certs}</table>"
            f"<h2>Firmware</h2><ul>{firmware}</ul></body></html>\n"
        )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {k}" for k, n in counts.items() if n)


# Texts (reasons, fixes, subjects) are plain text where `...` marks a command or a file.
_CODE = re.compile(r"`([^`\n]+)`")
_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|~#])")


def _md(text: str) -> str:
    """Plain text for a Markdown table cell: ``*``, ``_``, ``|``, ... are escaped (an EVSE
    ID ``DE*ABC*E1234567*1`` must not turn italic); `...` spans stay code spans."""
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(_MD_SPECIAL.sub(r"\\\1", text[last : m.start()]))
        out.append(_code(m[1]))
        last = m.end()
    out.append(_MD_SPECIAL.sub(r"\\\1", text[last:]))
    return "".join(out).replace("\n", " ")


def _code(text: str) -> str:
    """A Markdown code span for ``text`` (its ``|`` escaped: tables split on it)."""
    return "`" + text.replace("|", "\\|") + "`"


def _html(text: str) -> str:
    """Plain text for HTML: escaped, `...` spans become <code>."""
    out, last = [], 0
    for m in _CODE.finditer(text):
        out.append(html.escape(text[last : m.start()]))
        out.append(f"<code>{html.escape(m[1])}</code>")
        last = m.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def build_report(ctx: Context, outcomes: list[Outcome], not_run: tuple[str, ...] = ()) -> Report:
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
        not_run=not_run,
    )
