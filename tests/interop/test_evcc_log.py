"""The verdict over the peer's log (no root, no peer needed): a clean session passes;
a FAILED code, a missing response, a wrong protocol or security, a failure reason, a
missing mode message, a non-zero exit and a bound hit each fail with a reason; garbage
and truncated lines are ignored rather than crash the parser."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from tests.interop.josev import MODES, EvccRun, Mode, evcc_verdict, parse_evcc_log

AC_EIM = next(m for m in MODES if m.name == "iso2-ac-eim")
T0 = 12 * 3600


def _line(t: float, msg: str, level: str = "INFO") -> str:
    whole = int(t)
    ms = round((t - whole) * 1000)
    h, m, s = whole // 3600, whole // 60 % 60, whole % 60
    return f"{level}    2026-11-24 {h:02}:{m:02}:{s:02},{ms:03} - iso15118.shared.x (1): {msg}"


def _session(
    mode: Mode,
    requests: list[str],
    *,
    code: str = "OK",
    reason: str = "Communication session terminated",
    security: str = "NO_TLS",
    protocol: str = "ISO_15118_2",
    payment: str = "ExternalPayment",
    drop_last_response: bool = False,
) -> str:
    lines = [
        "garbage line without a time stamp",
        _line(T0, f"SDPResponse received: [ IP address: fe80::1, Security: {security} , x ]"),
        _line(T0 + 0.1, f"Chosen protocol: {protocol}"),
        _line(T0 + 0.1, f"Message to encode: {json.dumps({'SelectedPaymentOption': payment})}"),
    ]
    t = T0 + 1.0
    for i, name in enumerate(requests):
        lines.append(_line(t, f"Sent {name}"))
        if drop_last_response and i == len(requests) - 1:
            break
        res = name.removesuffix("Req") + "Res"
        body = {"V2G_Message": {"Body": {res: {"ResponseCode": code if i == 2 else "OK"}}}}
        lines.append(_line(t + 0.002, "EXI-encoded message (ns=Namespace.ISO_V2_MSG_DEF): 80"))
        lines.append(_line(t + 0.05, f"Decoded message (ns=Namespace.X): {json.dumps(body)}"))
        lines.append(_line(t + 0.051, f"{res} received"))
        t += 0.1
    lines.append(_line(t, f"Reason: {reason}"))
    lines.append(_line(t, "Sent Trunc"[:5]))  # a cut line: no "Sent <name>" match
    return "\n".join(lines)


def _run(mode: Mode, log: str, returncode: int | None = 0) -> EvccRun:
    return EvccRun(mode=mode, log=log, returncode=returncode, elapsed=1.0, workdir=Path("."))


FULL = [
    "SessionSetupReq",
    "ServiceDiscoveryReq",
    "PaymentServiceSelectionReq",
    "AuthorizationReq",
    "ChargeParameterDiscoveryReq",
    "PowerDeliveryReq",
    "ChargingStatusReq",
    "PowerDeliveryReq",
    "SessionStopReq",
]


def test_clean_session_passes_and_measures() -> None:
    verdict = evcc_verdict(_run(AC_EIM, _session(AC_EIM, FULL)))
    assert verdict.ok, verdict.problems
    assert verdict.log.requests == tuple(FULL)
    assert verdict.log.round_trips() == pytest.approx([0.002] * len(FULL), abs=1e-6)
    assert verdict.log.round_trips(decoded=True) == pytest.approx([0.051] * len(FULL), abs=1e-6)
    assert verdict.log.span == pytest.approx(0.8 + 0.051, abs=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "returncode", "expected"),
    [
        ({"code": "FAILED_SequenceError"}, 0, "with FAILED_SequenceError"),
        ({"reason": "TimeoutError occurred"}, 0, "ended with reason"),
        ({"security": "TLS"}, 0, "SDP security"),
        ({"protocol": "DIN_SPEC_70121"}, 0, "appHandshake chose"),
        ({"payment": "Contract"}, 0, "SelectedPaymentOption"),
        ({"drop_last_response": True}, 0, "SessionStopReq: no response"),
        ({}, 1, "exited with 1"),
        ({}, None, "did not exit"),
    ],
)
def test_each_fault_fails_with_its_reason(
    kwargs: dict[str, object], returncode: int | None, expected: str
) -> None:
    log = _session(AC_EIM, FULL, **kwargs)  # type: ignore[arg-type]
    verdict = evcc_verdict(_run(AC_EIM, log, returncode))
    assert not verdict.ok
    assert any(expected in p for p in verdict.problems), verdict.problems


def test_a_mode_message_missing_fails() -> None:
    pnc = replace(AC_EIM, pnc=True)
    verdict = evcc_verdict(_run(pnc, _session(pnc, FULL, payment="Contract")))
    assert any("never answered: PaymentDetailsReq" in p for p in verdict.problems)


def test_truncated_and_empty_logs_do_not_crash() -> None:
    text = _session(AC_EIM, FULL)
    for cut in (0, 1, 50, len(text) // 2, len(text) - 3):
        parsed = parse_evcc_log(text[:cut])
        assert len(parsed.exchanges) <= len(FULL)
    assert not evcc_verdict(_run(AC_EIM, "")).ok
    assert parse_evcc_log("\x00\xff" * 1000 + "\n" * 10).exchanges == ()
