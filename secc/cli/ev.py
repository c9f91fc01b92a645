"""``secc ev``: the EV simulator against a station on the network (lab use).

SDP by multicast on ``--interface`` (or unicast to ``--address``), then TLS or TCP to
the offered port, one full AC or DC session, EIM or Plug & Charge, ISO 15118-2, DIN
SPEC 70121 or ISO 15118-20, with a timeline of every exchange.  The EV holds only what a
car holds: the V2G root certificate(s) it trusts (``--v2g-root``), its contract chain and
key (``--contract-chain``/``--contract-key``), its OEM provisioning chain and key
(``--oem-chain``/``--oem-key``, for certificate installation) and for -20 its vehicle TLS
chain and key; ``--pki DIR`` takes those files from a ``secc certs make-test-pki``
directory (and reads no other file of it).  Every wait is bounded as the standard bounds
it: each response by V2G_EVCC_Msg_Timeout, EVSEProcessing=Ongoing, CableCheck and
PreCharge by their EVCC timeouts.  Exit 0 when the session ran to SessionStopRes, 1
otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from cryptography import x509

from certs import testpki
from certs._util import Issued
from certs.store import ISO20_KEYS, load_private_key
from secc.aio.ev_client import EvError, EvResult, Step, run_ev, run_ev_sdp
from secc.cli._help import plain, summary
from secc.core.config import PncTrust
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
from secc.ev.pnc2 import (
    Ev2Credentials,
    EvCredentials,
    EvFileError,
    check_pair,
    load_credentials2,
    pki_dir_files,
    read_certificates,
    read_chain,
    read_key,
)
from secc.ev.pnc20 import Ev20Credentials, Ev20Faults, load_credentials20
from secc.sdp import SDP_PORT, Security
from secc.testing.pki import Credentials, der


def _fmt(value: Any, unit: str) -> str:
    if isinstance(value, dict) and set(value) == {"exponent", "value"}:  # -20 RationalNumber
        value = value["value"] * 10.0 ** value["exponent"]
    return f"{value:g} {unit}" if isinstance(value, int | float) else ""


HEADER = f"  {'time':>9}  {'response':<30} {'ResponseCode':<26} {'took':>9}  EVSE"


def format_step(step: Step) -> str:
    """One timeline line: time, response, code, timing, voltage/current/energy."""
    s = step.summary
    nested = {k: v for part in s.values() if isinstance(part, dict) for k, v in part.items()}
    facts = []
    if "evse_id" in s:
        facts.append(f"EVSE ID {s['evse_id']}")
    if "evse_processing" in s:
        facts.append(s["evse_processing"])
    for key, unit in (
        ("evse_present_voltage", "V"),
        ("evse_present_current", "A"),
        ("evse_max_current", "A max"),
        ("evse_maximum_current_limit", "A max"),
    ):
        if key in s or key in nested:
            facts.append(_fmt(s.get(key, nested.get(key)), unit))
    if "meter_reading" in nested:
        facts.append(f"{nested['meter_reading']} Wh")
    if "charged_energy_reading_wh" in nested:
        facts.append(f"{nested['charged_energy_reading_wh']} Wh")
    if nested.get("bpt_discharged_energy_reading_wh") is not None:
        facts.append(f"{nested['bpt_discharged_energy_reading_wh']} Wh back")
    if nested.get("evse_notification") not in (None, "ExitStandby", "None"):
        facts.append(str(nested["evse_notification"]))
    if "evse_isolation_status" in nested and step.response.startswith("CableCheck"):
        facts.append(f"isolation {nested['evse_isolation_status']}")
    return (
        f"  {step.at:7.3f} s  {step.response:<30} {step.code:<26} {step.ms:6.1f} ms  "
        + "  ".join(f for f in facts if f)
    ).rstrip()


def load_credentials(pki_dir: Path, utc_now: dt.datetime) -> Credentials:
    """The test PKI's Plug & Charge material from a ``make-test-pki`` directory, for the
    demo and the tests: the EV's files and what a lab back end holds (the V2G root and
    CPS keys).  ``secc ev`` does not use it: an EV reads only its own files."""

    def cert(rel: str) -> x509.Certificate:
        return x509.load_pem_x509_certificate((pki_dir / rel).read_bytes())

    def chain(rel: str) -> tuple[bytes, ...]:
        return tuple(der(c) for c in x509.load_pem_x509_certificates((pki_dir / rel).read_bytes()))

    def key(rel: str) -> Any:
        return load_private_key((pki_dir / rel).read_bytes(), None, what=rel)

    v2g_root, mo_root = cert("v2g/root.pem"), cert("mo/root.pem")
    contract = chain("mo/contract_chain.pem")
    contract_key = key("mo/contract.key")
    oem, oem_key = chain("oem/prov_chain.pem"), key("oem/prov.key")
    leaf = x509.load_der_x509_certificate(contract[0])
    emaid = str(leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value)
    items = {"v2g_root": Issued("v2g_root", v2g_root, key("v2g/root.key"))}
    cps_key = pki_dir / "v2g/cps.key"
    if cps_key.exists():
        items["cps"] = Issued("cps", cert("v2g/cps.pem"), key("v2g/cps.key"))
    pki = testpki.TestPki(testpki.TestPkiOptions(emaid=emaid), items)
    return Credentials(
        pki=pki,
        emaid=emaid,
        contract_chain=contract,
        contract_key=contract_key,
        oem_chain=oem,
        oem_key=oem_key,
        trust=PncTrust(roots=(mo_root, v2g_root)),
    )


def script_for(
    mode: str, payment: str, *, din: bool = False, credentials: EvCredentials | None = None
) -> EvScript:
    """The -2/DIN EV of ``secc ev`` and the demo (lab pacing)."""
    return EvScript(
        protocol="din" if din else "iso2",
        energy_mode="DC_extended" if mode == "dc" else "AC_three_phase_core",
        payment="Contract" if payment == "pnc" else "ExternalPayment",
        credentials=credentials,
        charge_loops=5,
        think_time=0.01,
        poll_interval=0.1,
        loop_interval=0.1,
    )


def script20_for(mode: str, control: str, *, loops: int = 5) -> Ev20Script:
    """The -20 EV of ``secc ev --protocol iso20`` and the demo (lab pacing)."""
    return Ev20Script(
        mode=mode,
        control=control,
        charge_loops=loops,
        think_time=0.01,
        poll_interval=0.1,
        loop_interval=0.1,
        precharge_interval=0.05,
    )


def _parser(prog: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=prog,
        description=summary(__doc__),
        epilog=plain(" ".join(__doc__.split("\n\n")[1].split())) if __doc__ else None,
    )
    net = p.add_argument_group("the station")
    net.add_argument(
        "--interface", help="PLC interface for SDP multicast to ff02::1, e.g. eth1 (default: none)"
    )
    net.add_argument("--address", help="station address for unicast SDP, e.g. ::1 (default: none)")
    net.add_argument(
        "--sdp-port", type=int, default=SDP_PORT, help="SDP UDP port (default: %(default)s)"
    )
    net.add_argument(
        "--port",
        type=int,
        help="skip SDP: connect to this V2G port (needs --address; default: SDP)",
    )
    security = net.add_mutually_exclusive_group()
    security.add_argument(
        "--tls",
        dest="tls",
        action="store_true",
        default=None,
        help="ask for TLS (the default, but for DIN SPEC 70121, which has no TLS)",
    )
    security.add_argument("--tcp", dest="tls", action="store_false", help="ask for plain TCP")
    net.add_argument(
        "--msg-timeout",
        type=float,
        metavar="SECONDS",
        help="wait this long for every response (default: the standard's "
        "V2G_EVCC_Msg_Timeout of each request, e.g. 2 s, 0.25 s for CurrentDemand)",
    )
    net.add_argument(
        "--tls-keylog",
        type=Path,
        metavar="FILE",
        help="append the TLS secrets (SSLKEYLOGFILE format, for Wireshark) to FILE, "
        "created 0600 (default: none)",
    )
    ses = p.add_argument_group("the session")
    ses.add_argument(
        "--protocol",
        choices=("iso2", "din", "iso20"),
        default="iso2",
        help="ISO 15118-2, DIN SPEC 70121 or ISO 15118-20 (default: %(default)s)",
    )
    ses.add_argument("--din", action="store_true", help="same as --protocol din")
    ses.add_argument(
        "--mode",
        choices=("ac", "dc"),
        default="ac",
        help="AC or DC charging (default: %(default)s)",
    )
    ses.add_argument(
        "--payment",
        choices=("eim", "pnc"),
        default="eim",
        help="external identification or Plug & Charge (default: %(default)s)",
    )
    ses.add_argument(
        "--control",
        choices=("scheduled", "dynamic"),
        default="scheduled",
        help="ISO 15118-20 control mode (default: %(default)s)",
    )
    ses.add_argument(
        "--loops",
        type=int,
        default=5,
        metavar="N",
        help="charging loop iterations (default: %(default)s)",
    )
    ses.add_argument(
        "--energy",
        type=float,
        metavar="WH",
        help="ISO 15118-20: charge until the meter shows this many Wh (default: --loops)",
    )
    ses.add_argument(
        "--target-voltage",
        type=float,
        default=400.0,
        metavar="V",
        help="DC: the voltage PreCharge waits for and the charge loop asks (default: %(default)g)",
    )
    pki = p.add_argument_group(
        "Plug & Charge and TLS trust (the EV's own files, PEM; chains leaf first)"
    )
    pki.add_argument(
        "--pki",
        type=Path,
        metavar="DIR",
        help="a `secc certs make-test-pki` directory: the EV's files in it "
        "(v2g/root.pem, mo/contract_chain.pem + contract.key, oem/prov_chain.pem + "
        "prov.key; for -20 v2g20/, mo20/, oem20/ and oem20/vehicle_chain.pem + "
        "vehicle.key); the options below override single files (default: none)",
    )
    pki.add_argument(
        "--v2g-root",
        type=Path,
        action="append",
        default=[],
        metavar="FILE",
        help="a V2G root certificate the EV trusts, to verify the station and to name in "
        "certificate installation/update; repeatable (default: from --pki; without "
        "either the station's TLS certificate is not checked)",
    )
    pki.add_argument(
        "--contract-chain", type=Path, metavar="FILE", help="contract chain (default: from --pki)"
    )
    pki.add_argument(
        "--contract-key", type=Path, metavar="FILE", help="contract key (default: from --pki)"
    )
    pki.add_argument(
        "--oem-chain",
        type=Path,
        metavar="FILE",
        help="OEM provisioning chain, for installation (default: from --pki)",
    )
    pki.add_argument(
        "--oem-key", type=Path, metavar="FILE", help="OEM provisioning key (default: from --pki)"
    )
    pki.add_argument(
        "--vehicle-chain",
        type=Path,
        metavar="FILE",
        help="-20: vehicle TLS chain for mutual TLS (default: from --pki)",
    )
    pki.add_argument(
        "--vehicle-key",
        type=Path,
        metavar="FILE",
        help="-20: vehicle TLS key (default: from --pki)",
    )
    pki.add_argument(
        "--no-contract",
        action="store_true",
        help="start without a contract and install one (needs the OEM files)",
    )
    pki.add_argument(
        "--install-certificate",
        action="store_true",
        help="CertificateInstallationReq even with a contract (default: only without one)",
    )
    pki.add_argument(
        "--update-certificate",
        action="store_true",
        help="ISO 15118-2: CertificateUpdateReq (renew the contract) before charging",
    )
    pki.add_argument(
        "--no-client-cert", action="store_true", help="-20: no mutual TLS (default: mutual TLS)"
    )
    bpt = p.add_argument_group("ISO 15118-20 bidirectional power and attacks")
    bpt.add_argument("--bpt", action="store_true", help="AC_BPT / DC_BPT service")
    bpt.add_argument(
        "--discharge-loops",
        type=int,
        metavar="N",
        default=0,
        help="with --bpt: loops discharging after the charging ones (default: %(default)s)",
    )
    bpt.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=(
            "tamper-signature",
            "wrong-challenge",
            "wrong-curve",
            "no-signature",
            "tamper-metering",
        ),
        help="attack the station (tests); repeatable (default: none)",
    )
    return p


def _check(p: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse option combinations that cannot make a session, with the reason."""
    iso20, din = args.protocol == "iso20", args.protocol == "din"
    if args.interface is None and args.address is None:
        p.error("give --interface (SDP multicast) or --address")
    if args.port is not None and args.address is None:
        p.error("--port needs --address")
    if args.msg_timeout is not None and args.msg_timeout <= 0:
        p.error("--msg-timeout must be a positive number of seconds")
    if not 0 < args.target_voltage <= 1500:
        p.error("--target-voltage must be above 0 and at most 1500 V")
    if args.loops < 1:
        p.error("--loops must be at least 1")
    if args.tls_keylog is not None and not args.tls:
        p.error("--tls-keylog needs --tls")
    if din and (args.payment == "pnc" or args.install_certificate or args.update_certificate):
        p.error("DIN SPEC 70121 has no Plug & Charge nor certificate installation")
    if args.payment == "pnc" and not args.tls:
        p.error("--payment pnc needs --tls")
    certificate = args.no_contract or args.install_certificate or args.update_certificate
    if certificate and args.payment != "pnc":
        p.error("--no-contract, --install-certificate and --update-certificate need --payment pnc")
    if args.update_certificate and (iso20 or args.no_contract or args.install_certificate):
        p.error("--update-certificate is ISO 15118-2's, with a contract, without installation")
    if args.payment == "pnc" and args.pki is None:
        if not args.no_contract and args.contract_chain is None:
            p.error("--payment pnc needs --pki DIR or --contract-chain/--contract-key")
        if (args.no_contract or args.install_certificate) and args.oem_chain is None:
            p.error("certificate installation needs --pki DIR or --oem-chain/--oem-key")
        if not args.v2g_root and certificate:  # to check the CPS chain and signature
            p.error("certificate installation and update need --v2g-root (or --pki DIR)")
    for chain, key in (("contract_chain", "contract_key"), ("oem_chain", "oem_key")):
        if args.pki is None and (getattr(args, chain) is None) != (getattr(args, key) is None):
            p.error(f"--{chain.replace('_', '-')} and --{key.replace('_', '-')} go together")
    if (args.vehicle_chain is None) != (args.vehicle_key is None):
        p.error("--vehicle-chain and --vehicle-key go together")
    if (args.vehicle_chain or args.no_client_cert) and not iso20:
        p.error("--vehicle-chain/--vehicle-key/--no-client-cert are ISO 15118-20's")
    if (args.bpt or args.discharge_loops or args.fault) and not iso20:
        p.error("--bpt, --discharge-loops and --fault need --protocol iso20")
    if args.discharge_loops and not args.bpt:
        p.error("--discharge-loops needs --bpt")
    if args.energy is not None and (not iso20 or args.energy <= 0):
        p.error("--energy needs --protocol iso20 and a positive number of Wh")


def ev_files(args: argparse.Namespace, iso20: bool) -> dict[str, Path | None]:
    """The EV's files: each option, else the --pki directory's (None: not given)."""
    defaults: dict[str, Path] = (
        pki_dir_files(args.pki, "iso20" if iso20 else "iso2") if args.pki else {}
    )
    names = ("contract_chain", "contract_key", "oem_chain", "oem_key")
    files: dict[str, Path | None] = {n: getattr(args, n) or defaults.get(n) for n in names}
    if iso20:
        for n in ("vehicle_chain", "vehicle_key"):
            files[n] = getattr(args, n) or defaults.get(n)
    files["v2g_root"] = defaults.get("v2g_root")
    return files


def main(argv: list[str], prog: str) -> int:
    parser = _parser(prog)
    args = parser.parse_args(argv)
    if args.din:
        args.protocol = "din"
    if args.tls is None:  # DIN SPEC 70121 runs on plain TCP; -2 and -20 on TLS
        args.tls = args.protocol != "din"
    _check(parser, args)
    iso20 = args.protocol == "iso20"
    files = ev_files(args, iso20)
    roots: list[Path] = list(args.v2g_root)
    if not roots and files["v2g_root"] is not None:
        roots.append(files["v2g_root"])
    pnc = args.payment == "pnc"
    creds2: Ev2Credentials | None = None
    creds20: Ev20Credentials | None = None
    client_cert: tuple[Path, Path] | None = None
    installing = args.no_contract or args.install_certificate
    try:
        for root in roots:
            read_certificates(root, "V2G root certificate")
        if pnc and iso20:
            oem = installing or args.oem_chain is not None
            creds20 = load_credentials20(
                None,
                contract_chain=None if args.no_contract else files["contract_chain"],
                contract_key=None if args.no_contract else files["contract_key"],
                oem_chain=files["oem_chain"] if oem else None,
                oem_key=files["oem_key"] if oem else None,
                v2g_roots=roots,
                with_contract=not args.no_contract,
            )
            client_cert = _vehicle_cert(args, files)
        elif pnc:
            with_oem = installing
            creds2 = load_credentials2(
                v2g_roots=roots,
                contract_chain=None if args.no_contract else files["contract_chain"],
                contract_key=None if args.no_contract else files["contract_key"],
                oem_chain=files["oem_chain"] if with_oem else None,
                oem_key=files["oem_key"] if with_oem else None,
            )
    except EvFileError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    script: EvScript | Ev20Script
    if iso20:
        script = replace(
            script20_for(args.mode, args.control, loops=args.loops),
            energy_wh=args.energy,
            payment=args.payment,
            install_certificate=True if args.install_certificate else None,
            bpt=args.bpt,
            discharge_loops=args.discharge_loops,
            target_voltage=args.target_voltage,
            max_voltage=max(450.0, args.target_voltage),
        )
    else:
        script = replace(
            script_for(args.mode, args.payment, din=args.protocol == "din", credentials=creds2),
            charge_loops=args.loops,
            install_certificate=bool(installing),
            update_certificate=args.update_certificate,
            target_voltage=args.target_voltage,
            max_voltage=max(450.0, args.target_voltage),
        )
    if args.tls and not roots:
        print(f"{prog}: no --v2g-root/--pki: the station's certificate is not checked")
    try:
        print(HEADER)
        faults = Ev20Faults(**{f.replace("-", "_"): True for f in args.fault})
        result = asyncio.run(
            _run(
                args,
                script,
                roots,
                lambda s: print(format_step(s)),
                client_cert=client_cert,
                credentials=creds20,
                faults=faults,
            )
        )
    except EvError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 1
    tls = f"{result.tls_version or 'TLS'} {result.cipher}"
    print(f"EV: {result.ended} ({tls if result.tls else 'TCP'})")
    if result.outstanding:  # the request left without an answer, and when
        print(f"EV: outstanding: {result.outstanding}")
    ok = result.ended == "done" and result.steps and result.steps[-1].code == "OK"
    return 0 if ok else 1


async def _run(
    args: argparse.Namespace,
    script: EvScript | Ev20Script,
    cafile: list[Path],
    show: Callable[[Step], None],
    *,
    client_cert: tuple[Path, Path] | None = None,
    credentials: Ev20Credentials | None = None,
    faults: Ev20Faults | None = None,
) -> EvResult:
    if args.port is not None:
        return await run_ev(
            script,
            host=args.address,
            port=args.port,
            tls=args.tls,
            cafile=cafile,
            interface=args.interface,
            on_step=show,
            client_cert=client_cert,
            credentials=credentials,
            faults=faults,
            response_timeout=args.msg_timeout,
            keylog=args.tls_keylog,
        )
    return await run_ev_sdp(
        script,
        security=Security.TLS if args.tls else Security.NONE,
        interface=args.interface,
        address=args.address,
        sdp_port=args.sdp_port,
        cafile=cafile,
        on_step=show,
        client_cert=client_cert,
        credentials=credentials,
        faults=faults,
        response_timeout=args.msg_timeout,
        keylog=args.tls_keylog,
    )


def _vehicle_cert(
    args: argparse.Namespace, files: dict[str, Path | None]
) -> tuple[Path, Path] | None:
    """The vehicle TLS chain and key for mutual TLS: the options, else the test PKI's
    (when it has them); each file is checked readable first."""
    chain, key = files.get("vehicle_chain"), files.get("vehicle_key")
    if args.no_client_cert or chain is None or key is None:
        return None
    if args.vehicle_chain is None and not (chain.exists() and key.exists()):
        return None  # a test PKI without a vehicle certificate: PnC without mutual TLS
    check_pair(
        read_chain(chain, "vehicle TLS chain")[0],
        read_key(key, "vehicle TLS key", ISO20_KEYS),
        chain,
        key,
    )
    return chain, key
