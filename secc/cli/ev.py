"""``secc ev``: the EV simulator against a station on the network (lab use).

SDP by multicast on ``--interface`` (or unicast to ``--address``), then TLS or TCP to
the offered port, one full AC or DC session, EIM or Plug & Charge, ISO 15118-2, DIN
SPEC 70121 or ISO 15118-20 (``--protocol iso20``: ``--control scheduled|dynamic``, TLS
1.3; ``--payment pnc`` with mutual TLS (the vehicle chain and key), the contract signature,
``--install-certificate`` and metering confirmation; ``--bpt`` for bidirectional power
with ``--discharge-loops``); prints a timeline of every exchange.  ``--pki DIR`` is a
directory written by ``secc certs make-test-pki``: the EV trusts its V2G root
(``v2g20/root.pem`` for -20) and holds its contract chain and key, its OEM provisioning
chain and key (certificate installation) and for -20 its vehicle TLS chain and key; the
``--vehicle-*``, ``--contract-*`` and ``--oem-*`` options take other files (an EV never
holds a root's private key).  Exit 0 when the session ran to SessionStopRes, 1 otherwise.
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
from certs.store import StoreError, load_private_key
from secc.aio.ev_client import EvError, EvResult, Step, run_ev, run_ev_sdp
from secc.cli._help import summary
from secc.core.config import PncTrust
from secc.ev.iso2 import EvScript
from secc.ev.iso20 import Ev20Script
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
    if "evse_notification" in nested and nested["evse_notification"] != "ExitStandby":
        facts.append(str(nested["evse_notification"]))
    if "evse_isolation_status" in nested and step.response.startswith("CableCheck"):
        facts.append(f"isolation {nested['evse_isolation_status']}")
    return (
        f"  {step.at:7.3f} s  {step.response:<30} {step.code:<26} {step.ms:6.1f} ms  "
        + "  ".join(f for f in facts if f)
    ).rstrip()


def load_credentials(pki_dir: Path, utc_now: dt.datetime) -> Credentials:
    """The EV's Plug & Charge material from a ``make-test-pki`` directory."""

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
    mode: str, payment: str, *, din: bool = False, credentials: Credentials | None = None
) -> EvScript:
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


def main(argv: list[str], prog: str) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=summary(__doc__))
    parser.add_argument("--interface", help="PLC interface for SDP multicast (e.g. eth1)")
    parser.add_argument("--address", help="station address for unicast SDP (e.g. ::1)")
    parser.add_argument("--sdp-port", type=int, default=SDP_PORT)
    parser.add_argument("--port", type=int, help="skip SDP: connect to this V2G port")
    security = parser.add_mutually_exclusive_group()
    security.add_argument("--tls", dest="tls", action="store_true", default=True)
    security.add_argument("--tcp", dest="tls", action="store_false")
    parser.add_argument("--mode", choices=("ac", "dc"), default="ac")
    parser.add_argument("--payment", choices=("eim", "pnc"), default="eim")
    parser.add_argument("--protocol", choices=("iso2", "din", "iso20"), default="iso2")
    parser.add_argument("--din", action="store_true", help="same as --protocol din")
    parser.add_argument(
        "--control",
        choices=("scheduled", "dynamic"),
        default="scheduled",
        help="ISO 15118-20 control mode",
    )
    parser.add_argument("--pki", type=Path, help="a `secc certs make-test-pki` directory")
    parser.add_argument("--loops", type=int, default=5, help="charging loop iterations")
    parser.add_argument(
        "--energy", type=float, help="ISO 15118-20: charge until the meter shows this many Wh"
    )
    iso20_pnc = parser.add_argument_group("ISO 15118-20 Plug & Charge and BPT")
    iso20_pnc.add_argument("--vehicle-chain", type=Path, help="vehicle TLS chain (PEM, leaf first)")
    iso20_pnc.add_argument("--vehicle-key", type=Path, help="vehicle TLS key (PEM)")
    iso20_pnc.add_argument("--contract-chain", type=Path, help="contract chain (PEM, leaf first)")
    iso20_pnc.add_argument("--contract-key", type=Path, help="contract key (PEM)")
    iso20_pnc.add_argument("--oem-chain", type=Path, help="OEM provisioning chain (PEM)")
    iso20_pnc.add_argument("--oem-key", type=Path, help="OEM provisioning key (PEM)")
    iso20_pnc.add_argument(
        "--no-contract", action="store_true", help="start without a contract (install one)"
    )
    iso20_pnc.add_argument(
        "--install-certificate",
        action="store_true",
        help="ask CertificateInstallation even with a contract",
    )
    iso20_pnc.add_argument("--no-client-cert", action="store_true", help="no mutual TLS")
    iso20_pnc.add_argument("--bpt", action="store_true", help="AC_BPT / DC_BPT service")
    iso20_pnc.add_argument(
        "--discharge-loops", type=int, default=0, help="with --bpt: loops discharging"
    )
    iso20_pnc.add_argument(
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
        help="attack the station (tests): repeatable",
    )
    args = parser.parse_args(argv)
    if args.interface is None and args.address is None:
        parser.error("give --interface (SDP multicast) or --address")
    if args.din:
        args.protocol = "din"
    iso20 = args.protocol == "iso20"
    if args.payment == "pnc" and not args.tls:
        parser.error("--payment pnc needs --tls")
    if args.payment == "pnc" and args.pki is None and not (iso20 and args.contract_chain):
        parser.error("--payment pnc needs --pki (or for -20 the --contract-* files)")
    if (args.bpt or args.discharge_loops or args.fault) and not iso20:
        parser.error("--bpt, --discharge-loops and --fault need --protocol iso20")
    if args.discharge_loops and not args.bpt:
        parser.error("--discharge-loops needs --bpt")
    if args.port is not None and args.address is None:
        parser.error("--port needs --address")
    if args.energy is not None and (not iso20 or args.energy <= 0):
        parser.error("--energy needs --protocol iso20 and a positive number of Wh")
    creds = None
    creds20: Ev20Credentials | None = None
    cafile = None
    client_cert: tuple[Path, Path] | None = None
    if args.pki is not None or args.contract_chain is not None:
        pki = args.pki or Path(".")
        cafile = pki / ("v2g20" if iso20 else "v2g") / "root.pem" if args.pki else None
        try:
            if iso20:
                if cafile is not None:
                    cafile.read_bytes()
                if args.payment == "pnc":
                    creds20 = load_credentials20(
                        pki,
                        contract_chain=args.contract_chain,
                        contract_key=args.contract_key,
                        oem_chain=args.oem_chain,
                        oem_key=args.oem_key,
                        with_contract=not args.no_contract,
                    )
                    client_cert = _vehicle_cert(args, pki)
            else:
                creds = load_credentials(pki, dt.datetime.now(dt.UTC))
        except (OSError, ValueError, IndexError, StoreError) as exc:
            print(f"{prog}: cannot read the PKI in {pki}: {exc}", file=sys.stderr)
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
        )
    else:
        script = replace(
            script_for(args.mode, args.payment, din=args.protocol == "din", credentials=creds),
            charge_loops=args.loops,
        )
    try:
        print(HEADER)
        faults = Ev20Faults(**{f.replace("-", "_"): True for f in args.fault})
        result = asyncio.run(
            _run(
                args,
                script,
                cafile,
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
    ok = result.ended == "done" and result.steps and result.steps[-1].code == "OK"
    return 0 if ok else 1


async def _run(
    args: argparse.Namespace,
    script: EvScript | Ev20Script,
    cafile: Path | None,
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
    )


def _vehicle_cert(args: argparse.Namespace, pki: Path) -> tuple[Path, Path] | None:
    """The vehicle TLS chain and key for mutual TLS: the options, else the test PKI's."""
    if args.no_client_cert:
        return None
    chain = args.vehicle_chain or pki / "oem20" / "vehicle_chain.pem"
    key = args.vehicle_key or pki / "oem20" / "vehicle.key"
    if not chain.exists() or not key.exists():
        if args.vehicle_chain or args.vehicle_key:
            raise OSError(f"no vehicle chain/key at {chain} / {key}")
        return None  # no vehicle certificate: PnC without mutual TLS
    return chain, key
