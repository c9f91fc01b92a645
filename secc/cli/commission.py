"""``secc commission``: check (and on request provision) a station for Plug & Charge.

Exit status 0 only when the station is Plug & Charge ready (every check ran, none
FAILed), 1 when a step FAILed, 2 on a usage error (bad arguments or answers file, an
``--only`` that names no check), 3 when ``--only`` left checks out and the ones that ran
passed: a partial run gives no readiness verdict.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pwd
import sys
import tomllib
from collections.abc import Callable
from dataclasses import fields, replace
from pathlib import Path
from typing import Any, TextIO

from secc.commission.context import Context
from secc.commission.model import PRESETS, Answers, Check, Outcome, Status, UseCase
from secc.commission.runner import Progress, commission
from secc.config import DEFAULT_PATH

SIGN_ALIASES = {
    "v2g": "V2GCertificate",
    "V2GCertificate": "V2GCertificate",
    "csms": "ChargingStationCertificate",
    "ChargingStationCertificate": "ChargingStationCertificate",
    "v2g20": "V2GCertificate20",  # the ISO 15118-20 SECC leaf (P-521)
    "V2GCertificate20": "V2GCertificate20",
}
COLOURS = {Status.PASS: "32", Status.WARN: "33", Status.FAIL: "31", Status.SKIP: "90"}


class UsageError(Exception):
    pass


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description="Check a station for Plug & Charge readiness and provision what is "
        "asked for. Stop `secc run` first: the checks switch contactors and use the "
        "station's OCPP identity.",
    )
    p.add_argument("--config", type=Path, default=DEFAULT_PATH, help="station config (TOML)")
    p.add_argument("--answers", type=Path, help="answers file (TOML or JSON) for fleets")
    p.add_argument("--non-interactive", action="store_true", help="never ask questions")
    p.add_argument("--use-case", choices=[u.value for u in UseCase])
    p.add_argument(
        "--install-root",
        action="append",
        default=[],
        metavar="KIND=FILE",
        help="install a trust anchor (kind: v2g, mo, oem, csms, manufacturer)",
    )
    p.add_argument(
        "--sign",
        action="append",
        default=[],
        choices=sorted(SIGN_ALIASES),
        help="generate a key, send SignCertificate, wait for CertificateSigned",
    )
    p.add_argument(
        "--apply-preset",
        action="store_true",
        help="set the ISO15118Ctrlr variables of the use case",
    )
    p.add_argument("--seccid", help="ISO15118Ctrlr.SeccId (CN of the SECC certificate)")
    p.add_argument("--organization", help="OrganizationName for the certificate requests")
    p.add_argument("--country", help="CountryName (2 letters)")
    p.add_argument("--state-dir", type=Path, help="secc run's state (device model, local list)")
    p.add_argument("--only", action="append", default=[], metavar="NAME", help="run these checks")
    p.add_argument("--no-hal-self-test", action="store_true", help="do not switch contactors/lock")
    p.add_argument("--no-sdp", action="store_true", help="do not send SDP requests")
    p.add_argument(
        "--user",
        dest="service_user",
        metavar="NAME",
        help="check file access as this user (default: as root, the service user 'secc' "
        "if it exists; else the current user)",
    )
    p.add_argument("--json", type=Path, metavar="FILE", help="write the JSON report")
    p.add_argument("--report", type=Path, metavar="FILE", help="write a .md or .html report")
    return p


def load_answers(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
        data = json.loads(raw) if path.suffix == ".json" else tomllib.loads(raw.decode("utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the answers: {exc}") from exc
    if not isinstance(data, dict):
        raise UsageError(f"{path}: the answers must be a table / object")
    known = {f.name for f in fields(Answers)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(
            f"{path}: unknown answer {unknown[0]!r} (known: {', '.join(sorted(known))})"
        )
    return data


def _typed(key: str, value: object, default: object) -> object:
    """``value`` checked against the type of the answer's default (bool, int, float, str)."""
    kind = type(default)
    if kind not in (bool, int, float, str):
        return value
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if not ok:
        raise UsageError(f"answers: {key} must be {kind.__name__}, not {value!r}")
    return value


def build_answers(args: argparse.Namespace, data: dict[str, Any]) -> Answers:
    merged = dict(data)
    for key in ("use_case", "seccid", "organization", "country", "state_dir", "service_user"):
        value = getattr(args, key)
        if value is not None:
            merged[key] = value
    if args.apply_preset:
        merged["apply_preset"] = True
    if args.no_hal_self_test:
        merged["hal_self_test"] = False
    if args.no_sdp:
        merged["sdp_probe"] = False
    sign = merged.get("sign", [])
    if not isinstance(sign, list | tuple) or not all(isinstance(x, str) for x in sign):
        raise UsageError(f"answers: sign must be a list of certificate types, not {sign!r}")
    for key in ("use_case", "seccid", "organization", "country", "state_dir", "service_user"):
        if merged.get(key) is not None and not isinstance(merged[key], str | Path):
            raise UsageError(f"answers: {key} must be a string, not {merged[key]!r}")
    roots = merged.get("install_roots", {})
    pairs: list[tuple[str, Path]] = []
    if isinstance(roots, dict):
        for kind, files in roots.items():
            listed = [files] if isinstance(files, str) else files
            if not isinstance(listed, list) or not all(isinstance(f, str) for f in listed):
                raise UsageError(f"install_roots.{kind} must be a file name or a list of them")
            pairs += [(str(kind), Path(f)) for f in listed]
    else:
        raise UsageError("answers: install_roots must be a table of kind = file or [files]")
    for item in args.install_root:
        kind, sep, file = item.partition("=")
        if not sep or not file:
            raise UsageError(f"--install-root {item!r}: use KIND=FILE")
        pairs.append((kind, Path(file)))
    merged["install_roots"] = tuple(pairs)
    sign = [*merged.get("sign", []), *args.sign]
    try:
        merged["sign"] = tuple(dict.fromkeys(SIGN_ALIASES[s] for s in sign))
    except KeyError as exc:
        raise UsageError(f"sign: unknown certificate type {exc.args[0]!r}") from exc
    defaults = Answers()
    for key, value in list(merged.items()):
        merged[key] = _typed(key, value, getattr(defaults, key))
    try:
        if "use_case" in merged:
            merged["use_case"] = UseCase(merged["use_case"])
        if merged.get("state_dir") is not None:
            merged["state_dir"] = Path(merged["state_dir"])
        if merged.get("service_user") is not None:
            pwd.getpwnam(str(merged["service_user"]))
        return replace(Answers(), **merged)
    except KeyError:
        raise UsageError(f"service_user: no such user {merged['service_user']!r}") from None
    except (ValueError, TypeError) as exc:
        raise UsageError(f"answers: {exc}") from exc


def ask(
    answers: Answers,
    given_use_case: bool,
    out: TextIO,
    read: Callable[[str], str] = input,
) -> Answers:
    """The interactive questions (only on a terminal without --non-interactive)."""
    if not given_use_case:
        print("Business use case:", file=out)
        for i, u in enumerate(UseCase, 1):
            print(f"  {i}. {u.value}: {PRESETS[u].description}", file=out)
        choice = read(f"Choose 1-{len(UseCase)} [1]: ").strip() or "1"
        if choice.isdigit() and 1 <= int(choice) <= len(UseCase):
            answers = replace(answers, use_case=list(UseCase)[int(choice) - 1])
    if answers.hal_self_test:
        reply = read(
            "Self-test switches the contactors and the lock. No vehicle plugged in? [y/N] "
        )
        if reply.strip().lower() not in {"y", "yes"}:
            answers = replace(answers, hal_self_test=False)
    return answers


class PrintProgress(Progress):
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self.line = ""

    def start(self, index: int, total: int, title: str) -> None:
        self.line = f"[{index:2}/{total}] {title}" if total else f"[provision] {title}"
        if self.tty:
            self.out.write(f"\r\033[K{self.line} ...")
            self.out.flush()

    def waiting(self, what: str) -> None:
        if self.tty:
            self.out.write(f"\r\033[K{self.line}: {what} ...")
            self.out.flush()

    def done(self, index: int, total: int, outcome: Outcome) -> None:
        r = outcome.result
        word = r.status.value
        if self.tty:
            word = f"\033[{COLOURS[r.status]}m{word}\033[0m"
            self.out.write("\r\033[K")
        self.out.write(f"{word} {outcome.title}: {r.reason}\n")
        if r.fix and r.status in {Status.FAIL, Status.WARN}:
            self.out.write(f"     fix: {r.fix}\n")
        self.out.flush()


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    try:
        data = load_answers(args.answers) if args.answers else {}
        answers = build_answers(args, data)
    except UsageError as exc:
        parser.print_usage(sys.stderr)
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    interactive = not args.non_interactive and not args.answers and sys.stdin.isatty()
    if interactive:
        answers = ask(answers, args.use_case is not None, sys.stdout)
    ctx = Context(args.config, answers)
    wanted = list(args.only)
    seen: list[str] = []
    matched: set[str] = set()

    def only(check: Check) -> bool:
        seen.append(check.name)
        hits = {w for w in wanted if check.name.startswith(w)}
        matched.update(hits)
        return not wanted or bool(hits)

    report = asyncio.run(commission(ctx, only=only, progress=PrintProgress(sys.stdout)))
    steps = [o.name for o in report.outcomes]  # provisioning steps run whatever --only says
    unknown = [w for w in wanted if w not in matched and not any(s.startswith(w) for s in steps)]
    if unknown and seen:
        print(
            f"{prog}: error: --only {unknown[0]!r} names no check "
            f"(the checks: {', '.join(dict.fromkeys(seen))})",
            file=sys.stderr,
        )
        return 2
    if args.json:
        args.json.write_text(report.json_text())
    if args.report:
        text = report.html() if args.report.suffix in {".html", ".htm"} else report.markdown()
        args.report.write_text(text)
    counts = ", ".join(f"{n} {k}" for k, n in report.counts.items() if n)
    print(f"{report.station}: {report.verdict} ({counts})")
    if report.ready:
        return 0
    return 3 if report.partial and not report.failed else 1
