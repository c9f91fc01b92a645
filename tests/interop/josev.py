"""The independent peer: the ``iso15118`` package ("Josev") in its own venv.

- :func:`peer_unavailable` says why the peer cannot run (no ``.venv-josev``, no Java 17).
- :func:`josev_pki` lays a test PKI made by ``secc certs make-test-pki`` out the way the
  package loads it (``<PKI_PATH>/iso15118_2/certs/*.der|pem`` and
  ``.../private_keys/*.key`` + ``*Password.txt``), so both sides share the same roots.
- :class:`Mode` names what one interop test runs; :func:`run_evcc` runs the package's EVCC
  in the EV namespace with a hard time bound and returns its log, :func:`evcc_verdict`
  reads that log.
- :func:`start_josev_secc` starts the package's own SECC (used to prove the harness, and
  as the reference for the latency comparison).

Facts about the peer this module relies on (learnt by running it): it binds to a named
interface and connects to ``addr%iface``; it reads ``.env`` from its working directory
(so every run gets a fresh working directory); its EVCC takes the config JSON as
``argv[1]`` and falls back to defaults silently when the file is missing (so the file is
checked here first); after a failed session it does not exit (so it runs under a bound).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

REPO = Path(__file__).resolve().parents[2]
JOSEV_VERSION = "0.31.2"


def josev_venv() -> Path:
    return Path(os.environ.get("SECC_JOSEV_VENV", str(REPO / ".venv-josev")))


def josev_python() -> Path:
    return josev_venv() / "bin" / "python"


def peer_unavailable() -> str | None:
    """Why the peer cannot run here, or None."""
    python = josev_python()
    if not python.exists():
        return f"no {python} (run .ci/interop-setup.sh)"
    java = shutil.which("java")
    if java is None:
        return "no java on PATH (the peer's EXI codec needs Java 17; run .ci/interop-setup.sh)"
    probe = subprocess.run(
        [str(python), "-c", "import aiofile, iso15118.evcc.main, iso15118.secc.main"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if probe.returncode != 0:
        return f"the iso15118 package does not import in {python}: {probe.stderr[-300:]}"
    return None


# --- PKI -------------------------------------------------------------------------------

# Josev file stem -> (make-test-pki file, with a private key?)
_CERTS: dict[str, tuple[str, bool]] = {
    "v2gRootCA": ("v2g/root", True),
    "cpoSubCA1": ("v2g/sub1", True),
    "cpoSubCA2": ("v2g/sub2", True),
    "seccLeaf": ("v2g/secc", True),
    "cpsSubCA1": ("v2g/cps_sub1", True),
    "cpsSubCA2": ("v2g/cps_sub2", True),
    "cpsLeaf": ("v2g/cps", True),
    "moRootCA": ("mo/root", True),
    "moSubCA1": ("mo/sub1", True),
    "moSubCA2": ("mo/sub2", True),
    "contractLeaf": ("mo/contract", True),
    "oemRootCA": ("oem/root", True),
    "oemSubCA1": ("oem/sub1", True),
    "oemSubCA2": ("oem/sub2", True),
    "oemLeaf": ("oem/prov", True),
}
_PASSWORD_FILES = (
    "seccLeafPassword.txt",
    "oemLeafPassword.txt",
    "contractLeafPassword.txt",
    "cpsLeafPassword.txt",
    "moSubCA2LeafPassword.txt",
)


@dataclass(frozen=True, slots=True)
class SharedPki:
    source: Path  # the make-test-pki directory (station store in source/"station")
    josev: Path  # the peer's PKI_PATH

    @property
    def station_store(self) -> Path:
        return self.source / "station"

    @property
    def emaid(self) -> str:
        cert = x509.load_pem_x509_certificate((self.source / "mo/contract.pem").read_bytes())
        cn = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value
        return str(cn)


def make_test_pki(directory: Path) -> None:
    """``secc certs make-test-pki DIR`` through the real console entry point."""
    secc = Path(os.environ.get("SECC_BIN", str(REPO / ".venv/bin/secc")))
    subprocess.run(
        [str(secc), "certs", "make-test-pki", str(directory)],
        check=True,
        capture_output=True,
        timeout=120,
    )


# For ISO 15118-20 the peer reads the same file names (its CertPath/KeyPath always point
# into ``iso15118_2/``; iso15118.shared.security says "TODO: Make filepath flexible"), so
# a -20 layout puts the -20 material under those names: the MO (contract) hierarchy from
# ``mo20/`` and, as its one OEM leaf (its TLS 1.3 client certificate and its provisioning
# certificate alike), the -20 vehicle chain from ``oem20/``.
_CERTS20: dict[str, tuple[str, bool]] = {
    "moRootCA": ("mo20/root", True),
    "moSubCA1": ("mo20/sub1", True),
    "moSubCA2": ("mo20/sub2", True),
    "contractLeaf": ("mo20/contract", True),
    "oemRootCA": ("oem20/root", True),
    "oemSubCA1": ("oem20/sub1", True),
    "oemSubCA2": ("oem20/sub2", True),
    "oemLeaf": ("oem20/vehicle", True),
}


def josev_pki(source: Path, target: Path, *, iso20: bool = False) -> SharedPki:
    """Copy the make-test-pki tree in ``source`` into the peer's layout under ``target``.

    Certificates go in as DER and PEM, keys as unencrypted PKCS#8 PEM with empty password
    files (the peer then loads them without a password), plus the chains it hands to TLS
    (``cpoCertChain.pem``: SECC leaf, CPO sub-CA 2, sub-CA 1; ``oemCertChain.pem``).
    ``iso20``: the MO and OEM files are the -20 ones (see :data:`_CERTS20`)."""
    certs = target / "iso15118_2" / "certs"
    keys = target / "iso15118_2" / "private_keys"
    certs.mkdir(parents=True, exist_ok=True)
    keys.mkdir(parents=True, exist_ok=True)
    pems: dict[str, bytes] = {}
    layout = {**_CERTS, **_CERTS20} if iso20 else _CERTS
    for stem, (name, has_key) in layout.items():
        cert = x509.load_pem_x509_certificate((source / f"{name}.pem").read_bytes())
        pem = cert.public_bytes(serialization.Encoding.PEM)
        pems[stem] = pem
        (certs / f"{stem}Cert.pem").write_bytes(pem)
        (certs / f"{stem}Cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
        if has_key:
            key = serialization.load_pem_private_key(
                (source / f"{name}.key").read_bytes(), password=None
            )
            (keys / f"{stem}.key").write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    # the EV's trust store for TLS (its one V2G root file, PEM): the -2 root and, when the
    # test PKI has one, the ISO 15118-20 root (P-521) that anchors the -20 SECC chain
    iso20_root = source / "v2g20" / "root.pem"
    if iso20_root.exists():
        (certs / "v2gRootCACert.pem").write_bytes(pems["v2gRootCA"] + iso20_root.read_bytes())
    (certs / "cpoCertChain.pem").write_bytes(
        pems["seccLeaf"] + pems["cpoSubCA2"] + pems["cpoSubCA1"]
    )
    (certs / "oemCertChain.pem").write_bytes(
        pems["oemLeaf"] + pems["oemSubCA2"] + pems["oemSubCA1"]
    )
    for name in _PASSWORD_FILES:
        (keys / name).write_text("")
    return SharedPki(source=source, josev=target)


# --- modes -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mode:
    name: str
    # Josev's Protocol enum name the appHandshake must choose: ISO_15118_2,
    # DIN_SPEC_70121, ISO_15118_20_AC or ISO_15118_20_DC
    protocol: str
    energy: str  # "AC" or "DC"
    tls: bool
    pnc: bool = False
    cert_install: bool = False
    # the station's EVSE ID for this mode; DIN: see DIN_EVSE_ID
    evse_id: str = "DE*ABC*E1234567*1"  # the SECC leaf's CN in make-test-pki
    # what the EV offers (its priority order); empty: just ``protocol``
    offered: tuple[str, ...] = ()
    tls13: bool = False  # the EV offers TLS 1.3 (ENABLE_TLS_1_3): needed for -20
    # the station's [[evse]] pnc switch (ISO 15118-20: PnC is offered to an EV that
    # presented a vehicle certificate, and this peer always presents one over TLS 1.3)
    station_pnc: bool = True
    # ISO 15118-20 control mode the station offers (the peer takes the first offered)
    control: str | None = None
    # the station's [[evse]] protocols
    station_protocols: tuple[str, ...] = ("iso2", "din")
    # The peer numbers its appHandshake priorities in the order of a Python set of the
    # configured names (iso15118.shared.utils.load_requested_protocols intersects sets),
    # so the order depends on the string hash seed; a fixed PYTHONHASHSEED makes it
    # deterministic (e.g. 14: -20 AC, -2, DIN; 5: -20 DC, -2, DIN).
    hash_seed: int | None = None
    # ISO 15118-20 energy services the EV asks for (the peer's supportedEnergyServices,
    # e.g. "AC_BPT"); empty: just ``energy``
    energy_services: tuple[str, ...] = ()

    @property
    def iso20(self) -> bool:
        return self.protocol.startswith("ISO_15118_20")

    @property
    def energy_transfer_mode(self) -> str:
        return "AC_three_phase_core" if self.energy == "AC" else "DC_extended"

    def evcc_config(self, loop_cycles: int = 10) -> dict[str, object]:
        config: dict[str, object] = {
            "supportedProtocols": list(self.offered or (self.protocol,)),
            "energyTransferMode": self.energy_transfer_mode,
            "isCertInstallNeeded": self.cert_install,
            "useTls": self.tls,
            "enforceTls": self.tls,
            "chargeLoopCycle": loop_cycles,
        }
        if self.protocol == "ISO_15118_2" or self.iso20:
            config["supportedEnergyServices"] = list(self.energy_services or (self.energy,))
        return config


# DIN SPEC 70121's EVSEID is hexBinary in DIN SPEC 91286 form ("49*89*6360" is packed as
# 49 A8 9A 63 60); the peer refuses more than 16 octets (its limit is 32 hex characters),
# and the core sends the ASCII of the ID, so the DIN mode runs with a short numeric ID.
# test_din_long_evse_id records what happens with the ISO-style ID.
DIN_EVSE_ID = "49*89*6360"

MODES: tuple[Mode, ...] = (
    Mode("iso2-ac-eim", "ISO_15118_2", "AC", tls=False),
    Mode("iso2-dc-eim", "ISO_15118_2", "DC", tls=False),
    Mode("iso2-ac-pnc-tls", "ISO_15118_2", "AC", tls=True, pnc=True),
    Mode("iso2-dc-pnc-tls", "ISO_15118_2", "DC", tls=True, pnc=True),
    Mode("iso2-ac-pnc-cert-install", "ISO_15118_2", "AC", tls=True, pnc=True, cert_install=True),
    Mode("din-dc", "DIN_SPEC_70121", "DC", tls=False, evse_id=DIN_EVSE_ID),
)


# --- running the peer ------------------------------------------------------------------


def _env_file(workdir: Path, values: dict[str, str]) -> dict[str, str]:
    """Write ``workdir/.env`` and return the same values for the process environment too
    (the environment wins over any stray .env the peer might find elsewhere)."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / ".env").write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    env = {k: v for k, v in os.environ.items() if k in {"PATH", "LANG", "LC_ALL", "TZ"}}
    env["HOME"] = str(workdir)
    env.update(values)
    return env


@dataclass(slots=True)
class EvccRun:
    mode: Mode
    log: str
    returncode: int | None  # None: killed at the bound
    elapsed: float
    workdir: Path

    @property
    def timed_out(self) -> bool:
        return self.returncode is None


def run_evcc(
    ns: str, iface: str, mode: Mode, pki: SharedPki, workdir: Path, bound: float = 45.0
) -> EvccRun:
    """Run the peer's EVCC for one session inside namespace ``ns`` with a hard bound."""
    config = workdir / "evcc_config.json"
    workdir.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(mode.evcc_config(), indent=2))
    env = _env_file(
        workdir,
        {
            "NETWORK_INTERFACE": iface,
            "LOG_LEVEL": "DEBUG",
            "PKI_PATH": f"{pki.josev}/",
            "EVCC_CONFIG_PATH": str(config),
            "MESSAGE_LOG_JSON": "True",
            "MESSAGE_LOG_EXI": "True",
            "ENABLE_TLS_1_3": "True" if mode.tls13 else "False",
            **({"PYTHONHASHSEED": str(mode.hash_seed)} if mode.hash_seed is not None else {}),
        },
    )
    cmd = ["ip", "netns", "exec", ns, str(josev_python()), "-m", "iso15118.evcc.main"]
    cmd.append(str(config))
    start = time.monotonic()
    with (workdir / "evcc.log").open("w+b") as out:
        proc = subprocess.Popen(
            cmd, cwd=workdir, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            returncode = _wait_or_give_up(proc, workdir / "evcc.log", start + bound)
        finally:
            stop_group(proc)
        elapsed = time.monotonic() - start
        out.seek(0)
        log = out.read().decode(errors="replace")
    return EvccRun(mode=mode, log=log, returncode=returncode, elapsed=elapsed, workdir=workdir)


def _wait_or_give_up(proc: subprocess.Popen[bytes], log: Path, deadline: float) -> int | None:
    """Wait for the EVCC to exit; after a failed session it never does, so give up 2 s
    after it logged a ``Reason:`` other than the clean end (or at ``deadline``)."""
    failed_at: float | None = None
    while (now := time.monotonic()) < deadline:
        with contextlib.suppress(subprocess.TimeoutExpired):
            return proc.wait(timeout=0.2)
        if failed_at is None:
            reason = _REASON_IN_LOG.search(log.read_bytes().decode(errors="replace"))
            if reason is not None and reason[1].strip() not in SUCCESS_REASONS:
                failed_at = now
        elif now - failed_at > 2.0:
            return None
    return None


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End the process group we started (the peer starts a Java child that may outlive
    its parent, so the whole group goes, even after a clean exit)."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)


# --- reading the EVCC log --------------------------------------------------------------

_LINE = re.compile(
    r"^(?P<level>[A-Z]+)\s+(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) - "
    r"(?P<logger>[\w.]+) \(\d+\): (?P<msg>.*)$"
)
_SENT = re.compile(r"^Sent (\w+)$")
_RECEIVED = re.compile(r"^(\w+) received$")
_DECODED = re.compile(r"^Decoded message \(ns=[^)]*\): (\{.*\})\s*$")
_RAW_IN = re.compile(r"^EXI-encoded message \(ns=")
_SDP = re.compile(r"^SDPResponse received: .*Security: (\w+)")
_CHOSEN = re.compile(r"^Chosen protocol: (\w+)")
_REASON = re.compile(r"^Reason: (.*)$")
_PAYMENT = re.compile(r'"SelectedPaymentOption": ?"(\w+)"')
_AUTHORIZATION = re.compile(r'"SelectedAuthorizationService": ?"(\w+)"')
# what the EVCC logs after a SessionStopRes OK: ISO 15118-2 / DIN SPEC 70121
SUCCESS_REASONS = ("Communication session terminated", "Communication session stopped successfully")
_REASON_IN_LOG = re.compile(r" - iso15118[\w.]* \(\d+\): Reason: (.*)$", re.MULTILINE)


def _seconds(ts: str) -> float:
    clock = ts.split(" ")[1]
    hms, ms = clock.split(",")
    h, m, sec = (int(x) for x in hms.split(":"))
    return h * 3600 + m * 60 + sec + int(ms) / 1000


def _codes(value: object) -> list[str]:
    """Every ResponseCode in a decoded message (nested anywhere)."""
    found: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "ResponseCode" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(_codes(item))
    elif isinstance(value, list):
        for item in value:
            found.extend(_codes(item))
    return found


@dataclass(frozen=True, slots=True)
class Exchange:
    request: str
    response: str | None
    code: str | None
    round_trip: float | None  # request sent -> response bytes in (EV side), seconds
    until_decoded: float | None  # request sent -> response decoded by the EV, seconds


@dataclass(frozen=True, slots=True)
class EvccLog:
    exchanges: tuple[Exchange, ...]
    security: str | None  # from the SDP response the EV got: TLS / NO_TLS
    protocol: str | None  # what the appHandshake chose
    reason: str | None  # the EVCC's "Reason:" at the end
    payment: str | None  # SelectedPaymentOption the EV sent (Contract / ExternalPayment)
    errors: tuple[str, ...]  # ERROR / CRITICAL lines
    span: float  # first request sent -> last response decoded, seconds

    @property
    def requests(self) -> tuple[str, ...]:
        return tuple(e.request for e in self.exchanges)

    def round_trips(self, *, decoded: bool = False) -> list[float]:
        values = (e.until_decoded if decoded else e.round_trip for e in self.exchanges)
        return [v for v in values if v is not None]


def parse_evcc_log(text: str) -> EvccLog:
    exchanges: list[Exchange] = []
    pending: tuple[str, float] | None = None
    raw_in: float | None = None
    code: str | None = None
    security = protocol = reason = payment = None
    errors: list[str] = []
    first: float | None = None
    last: float | None = None
    for line in text.splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        msg, t = m["msg"], _seconds(m["ts"])
        if m["level"] in {"ERROR", "CRITICAL"}:
            errors.append(msg[:300])
        if (s := _SENT.match(msg)) is not None:
            if pending is not None:
                exchanges.append(Exchange(pending[0], None, None, None, None))
            pending, raw_in, code = (s[1], t), None, None
            first = t if first is None else first
        elif _RAW_IN.match(msg) and pending is not None and raw_in is None:
            raw_in = t
        elif (d := _DECODED.match(msg)) is not None and pending is not None:
            try:
                codes = _codes(json.loads(d[1]))
            except ValueError:
                codes = []
            code = codes[0] if codes else None
        elif (r := _RECEIVED.match(msg)) is not None and pending is not None:
            name, sent = pending
            exchanges.append(
                Exchange(
                    name,
                    r[1],
                    code,
                    None if raw_in is None else raw_in - sent,
                    t - sent,
                )
            )
            pending, last = None, t
        elif (sdp := _SDP.match(msg)) is not None:
            security = sdp[1]
        elif (c := _CHOSEN.match(msg)) is not None:
            protocol = c[1]
        elif (why := _REASON.match(msg)) is not None:
            reason = why[1].strip()
        if (p := _PAYMENT.search(msg)) is not None:
            payment = p[1]
    if pending is not None:
        exchanges.append(Exchange(pending[0], None, None, None, None))
    span = 0.0 if first is None or last is None else last - first
    return EvccLog(tuple(exchanges), security, protocol, reason, payment, tuple(errors), span)


def required_requests(mode: Mode) -> tuple[str, ...]:
    """Requests the EV must have had answered for ``mode`` to count as exercised."""
    if mode.iso20:
        family = "DC" if mode.energy == "DC" else "AC"
        names = [
            "SessionSetupReq",
            "AuthorizationSetupReq",
            "AuthorizationReq",
            "ServiceDiscoveryReq",
            "ServiceDetailReq",
            "ServiceSelectionReq",
            f"{family}_ChargeParameterDiscoveryReq",
            "ScheduleExchangeReq",
        ]
        if family == "DC":
            names += ["DC_CableCheckReq", "DC_PreChargeReq"]
        names += ["PowerDeliveryReq", f"{family}_ChargeLoopReq"]
        if family == "DC":
            names.append("DC_WeldingDetectionReq")
        names.append("SessionStopReq")
        return tuple(names)
    if mode.protocol == "DIN_SPEC_70121":
        return (
            "SessionSetupReq",
            "ServiceDiscoveryReq",
            "ServicePaymentSelectionReq",
            "ContractAuthenticationReq",
            "ChargeParameterDiscoveryReq",
            "CableCheckReq",
            "PreChargeReq",
            "PowerDeliveryReq",
            "CurrentDemandReq",
            "SessionStopReq",
        )
    names = ["SessionSetupReq", "ServiceDiscoveryReq", "PaymentServiceSelectionReq"]
    if mode.cert_install:
        names.append("CertificateInstallationReq")
    if mode.pnc:
        names.append("PaymentDetailsReq")
    names += ["AuthorizationReq", "ChargeParameterDiscoveryReq"]
    if mode.energy == "DC":
        names += ["CableCheckReq", "PreChargeReq", "PowerDeliveryReq", "CurrentDemandReq"]
        names.append("WeldingDetectionReq")
    else:
        names += ["PowerDeliveryReq", "ChargingStatusReq"]
    names.append("SessionStopReq")
    return tuple(names)


@dataclass(frozen=True, slots=True)
class EvccVerdict:
    ok: bool
    problems: tuple[str, ...]
    log: EvccLog


def evcc_verdict(run: EvccRun) -> EvccVerdict:
    """Did the EV run the whole session of ``run.mode`` and end it cleanly?"""
    log = parse_evcc_log(run.log)
    mode = run.mode
    problems: list[str] = []
    if run.timed_out:
        problems.append("the EVCC did not exit within its bound")
    elif run.returncode != 0:
        problems.append(f"the EVCC exited with {run.returncode}")
    if log.reason not in SUCCESS_REASONS:
        problems.append(f"the EVCC ended with reason {log.reason!r}")
    want_security = "TLS" if mode.tls else "NO_TLS"
    if log.security != want_security:
        problems.append(f"SDP security {log.security!r}, wanted {want_security}")
    if log.protocol != mode.protocol:
        problems.append(f"appHandshake chose {log.protocol!r}, wanted {mode.protocol}")
    if mode.protocol == "ISO_15118_2":
        want_payment = "Contract" if mode.pnc else "ExternalPayment"
        if log.payment != want_payment:
            problems.append(f"SelectedPaymentOption {log.payment!r}, wanted {want_payment}")
    if mode.iso20:
        chosen = _AUTHORIZATION.search(run.log)
        if chosen is None or chosen[1] != "EIM":
            problems.append(f"SelectedAuthorizationService {chosen and chosen[1]!r}, wanted EIM")
    for e in log.exchanges:
        if e.response is None:
            problems.append(f"{e.request}: no response")
        elif e.code is not None and not e.code.startswith("OK"):
            problems.append(f"{e.request}: {e.response} with {e.code}")
    answered = {e.request for e in log.exchanges if e.response is not None}
    missing = [r for r in required_requests(mode) if r not in answered]
    if missing:
        problems.append(f"never answered: {', '.join(missing)}")
    if log.exchanges and log.exchanges[-1].request != "SessionStopReq":
        problems.append(f"last request was {log.exchanges[-1].request}, not SessionStopReq")
    if log.errors:
        problems.append(f"EVCC logged errors: {log.errors[0]}")
    return EvccVerdict(not problems, tuple(problems), log)


# --- the package's own SECC (reference station) ----------------------------------------


@dataclass(slots=True)
class JosevSecc:
    """The package's own SECC in the station namespace (harness proof and reference)."""

    proc: subprocess.Popen[bytes]
    workdir: Path

    @property
    def log_path(self) -> Path:
        return self.workdir / "secc.log"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        stop_group(self.proc)

    def session_ended_by_ev(self) -> bool:
        """The SECC answered SessionStopReq and ended the session for that reason."""
        log = self.log()
        return "Sent SessionStopRes" in log and any(
            f"Session ended in SessionStop ({why})" in log
            for why in ("EV requested to terminate the communication session", *SUCCESS_REASONS)
        )


def start_josev_secc(ns: str, iface: str, pki: SharedPki, workdir: Path) -> JosevSecc:
    env = _env_file(
        workdir,
        {
            "NETWORK_INTERFACE": iface,
            "LOG_LEVEL": "INFO",
            "PKI_PATH": f"{pki.josev}/",
            "PROTOCOLS": "DIN_SPEC_70121,ISO_15118_2",
            "AUTH_MODES": "EIM,PNC",
            "FREE_CHARGING_SERVICE": "False",
            "ALLOW_CERT_INSTALL_SERVICE": "True",
        },
    )
    out = (workdir / "secc.log").open("wb")
    try:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, str(josev_python()), "-m", "iso15118.secc.main"],
            cwd=workdir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    finally:
        out.close()
    return JosevSecc(proc, workdir)
