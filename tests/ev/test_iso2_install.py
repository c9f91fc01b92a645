"""The -2 EV checks a CertificateInstallationRes before it takes the contract: the SA
provisioning chain must lead to a V2G root the EV trusts, and the CPS leaf must have signed
the contract chain, the encrypted key, the DHpublickey and the eMAID.  Run against the
core through the codec (the test harness) with a lab back end that answers or tampers."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable

from certs import testpki
from secc import codec
from secc.core.actions import RequestCertificate
from secc.core.config import SessionConfig
from secc.ev.iso2 import EvScript
from secc.ev.pnc2 import Ev2Credentials
from secc.testing.clock import FakeClock
from secc.testing.evse import FakeStation
from secc.testing.harness import Outcome, run_session
from secc.testing.pki import certificate_backend, make_credentials

START = dt.datetime.now(dt.UTC).replace(microsecond=0)
CREDS = make_credentials(START)
Backend = Callable[[RequestCertificate], bytes | None]


def _run(backend: Backend, v2g_root: object = None) -> Outcome:
    roots = (v2g_root,) if v2g_root is not None else CREDS.v2g_roots
    ev_creds = Ev2Credentials(
        oem_chain=CREDS.oem_chain,
        oem_key=CREDS.oem_key,
        v2g_roots=roots,  # type: ignore[arg-type]
    )
    clock = FakeClock(utc=START)
    script = EvScript(payment="Contract", credentials=ev_creds, install_certificate=True)
    config = SessionConfig(tls=True, trust=CREDS.trust)
    return run_session(config, script, clock=clock, station=FakeStation(backend=backend))


def _tampered(backend: Backend) -> Backend:
    """The back end's answer with another eMAID put in after signing."""

    def answer(request: RequestCertificate) -> bytes | None:
        exi = backend(request)
        assert exi is not None
        msg = codec.decode(exi, "iso2")
        body = msg.body.body_element
        emaid = dataclasses.replace(body.emaid, value="DEXYZC00000001")
        body = dataclasses.replace(body, emaid=emaid)
        return codec.encode(
            dataclasses.replace(msg, body=dataclasses.replace(msg.body, body_element=body))
        )

    return answer


def test_a_genuine_installation_is_taken_and_charges() -> None:
    out = _run(certificate_backend(CREDS, FakeClock(utc=START).random_bytes))
    assert out.ev.error is None, out.ev.error
    assert out.ev.responses[-1] == ("SessionStopRes", "OK")
    assert out.ev.installed and out.ev.emaid == CREDS.emaid  # type: ignore[union-attr]


def test_a_tampered_installation_is_refused() -> None:
    backend = _tampered(certificate_backend(CREDS, FakeClock(utc=START).random_bytes))
    out = _run(backend)
    names = [name for name, _ in out.ev.responses]
    assert out.ev.responses[-1] == ("CertificateInstallationRes", "OK")  # the station forwards
    assert out.ev.error == (
        "CertificateInstallationRes not trusted: the CPS signature: "
        "digest of #id4 does not match the element"
    )
    assert "PaymentDetailsRes" not in names


def test_a_cps_chain_from_a_root_the_ev_does_not_trust_is_refused() -> None:
    other = testpki.build_test_pki(START).cert("v2g_root")
    out = _run(certificate_backend(CREDS, FakeClock(utc=START).random_bytes), v2g_root=other)
    assert out.ev.error is not None
    assert out.ev.error.startswith("CertificateInstallationRes not trusted: SA provisioning chain")
    assert "PaymentDetailsRes" not in [name for name, _ in out.ev.responses]
