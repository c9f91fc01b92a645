"""-20 Plug & Charge: the PnC offer in AuthorizationSetup, the PnC AuthorizationReq
(contract chain, GenChallenge, the header signature over PnC_AReqAuthorizationMode),
CertificateInstallation forwarding and MeteringConfirmation.

Crypto is the real code of :mod:`certs` with ISO 15118-20's suite: chains of secp521r1 /
ecdsa-with-SHA512 or Ed448 certificates, digests SHA-512 (or SHAKE256) over the EXI
fragment of the signed element in the CommonMessages set, the signature over SignedInfo
as an xmldsig fragment.

Order of the checks on a PnC AuthorizationReq: the signature (FAILED_SignatureError, the
session ends), the GenChallenge (WARNING_ChallengeInvalid), the contract chain
(WARNING_Certificate*, WARNING_eMSPUnknown), then the back end (RequestAuthorization,
EVSEProcessing Ongoing until its answer).  A WARNING answer is Finished, and only
SessionStopReq may follow: the contactors were never closed and the session ends with
them open.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import TYPE_CHECKING, Any

from certs import codes  # (cryptography, certs.validate, certs.xmldsig: in the functions)
from secc import codec
from secc.core.actions import MeteringReceipt, RequestAuthorization, RequestCertificate
from secc.core.context import Context, Reply
from secc.core.events import CertificateResult, Schema
from secc.core.failures import (
    MeteringSignatureNotValid,
    PeerError,
    SequenceError,
    SignatureError,
    UnknownSession,
)
from secc.core.iso20.common import COMMON, Iso20State, failed_body, header

if TYPE_CHECKING:
    from certs import xmldsig


class NoCertificateAvailable(PeerError):  # noqa: N818 - named after the -2 failure
    """-20 has no FAILED_NoCertificateAvailable: a certificate installation that cannot
    be served is plain FAILED."""

    code = "FAILED"


CERTIFICATE_TIMER = "V2G_SECC_CertificateInstallation_Performance_Time"
COMMON_NAMESPACE = "urn:iso:std:iso:15118:-20:CommonMessages"
SCHEMA = "iso20-common"
AUTH_TIMER_KEY = "Authorization"

# certs.validate codes -> -20 AuthorizationRes codes (the -20 enumeration has no FAILED_
# certificate codes: a refused contract is a WARNING with EVSEProcessing Finished)
_CHAIN_CODE = {
    codes.FAILED_CERTIFICATE_EXPIRED: "WARNING_CertificateExpired",
    codes.FAILED_CERTIFICATE_NOT_YET_VALID: "WARNING_CertificateNotYetValid",
    codes.FAILED_CERTIFICATE_REVOKED: "WARNING_CertificateRevoked",
    codes.FAILED_CERT_CHAIN_ERROR: "WARNING_CertificateValidationError",
    codes.FAILED_SIGNATURE_ERROR: "WARNING_CertificateValidationError",
    codes.FAILED_NO_CERTIFICATE_AVAILABLE: "WARNING_eMSPUnknown",
}
# OCPP AuthorizeCertificateStatusEnumType -> -20 AuthorizationRes code
_CERT_STATUS = {
    "CertificateExpired": "WARNING_CertificateExpired",
    "CertificateRevoked": "WARNING_CertificateRevoked",
    "NoCertificateAvailable": "WARNING_NoCertificateAvailable",
    "CertChainError": "WARNING_CertificateValidationError",
    "SignatureError": "WARNING_CertificateValidationError",
    "ContractCancelled": "WARNING_GeneralPnCAuthorizationError",
}


class PncRefused(Exception):  # noqa: N818 - a refusal answered with a WARNING code
    """A PnC authorization refused with a -20 WARNING code (the session goes on to
    SessionStop)."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code


# --- the offer ---------------------------------------------------------------------------


def vehicle_chain_trusted(ctx: Context) -> bool:
    """The vehicle chain from mutual TLS, checked again against the OEM roots where the
    station has some (the transport checked it in the handshake; this keeps a chain from
    a root the core does not trust out of PnC)."""
    cfg = ctx.config
    chain = cfg.vehicle_chain
    if not chain:
        return False
    roots = cfg.trust.oem_roots
    if not roots:
        return True
    from cryptography.hazmat.primitives.serialization import Encoding

    from certs import validate

    ders = [c.public_bytes(Encoding.DER) for c in chain]
    verdict = validate.validate_chain(
        ders[0],
        ders[1:],
        (*roots, *cfg.trust.roots),
        ctx.utc_now(),
        profile="oem",
        revoked=cfg.trust.revoked,
        suite="iso20",
    )
    return verdict.ok


def pnc_offered(ctx: Context) -> bool:
    """PnC is offered where enabled, over TLS 1.3 in which the EV authenticated with its
    vehicle certificate (mutual TLS) from a root the station trusts."""
    cfg = ctx.config
    return cfg.pnc_enabled and cfg.tls13 and vehicle_chain_trusted(ctx)


def setup_fields(ctx: Context) -> dict[str, Any]:
    """The AuthorizationSetupRes fields: PnC (with a fresh 16-byte GenChallenge) and EIM
    where PnC is offered, else EIM alone; the certificate installation service with PnC
    where enabled."""
    if not pnc_offered(ctx):
        ctx.gen_challenge = None
        return {
            "authorization_services": (COMMON.Authorization.EIM,),
            "certificate_installation_service": False,
            "eim_as_res_authorization_mode": COMMON.EIM_ASResAuthorizationMode(),
        }
    ctx.gen_challenge = ctx.random_bytes(16)
    ctx.challenge_verified = False
    return {
        "authorization_services": (COMMON.Authorization.PnC, COMMON.Authorization.EIM),
        "certificate_installation_service": ctx.config.certificate_installation,
        "pn_c_as_res_authorization_mode": COMMON.PnC_ASResAuthorizationMode(
            gen_challenge=ctx.gen_challenge
        ),
    }


# --- signatures --------------------------------------------------------------------------


def _signed_info(sig: Any) -> xmldsig.SignedInfo:
    from secc.core.pnc_crypto import to_certs_signed_info

    return to_certs_signed_info(sig.signed_info)


def check_signature(
    ctx: Context, element: Any, leaf: bytes, error: type[PeerError] = SignatureError
) -> tuple[bytes, bytes, str]:
    """The header Signature must sign ``element`` (by its Id) with the key of ``leaf``,
    with -20 algorithms.  Returns (element fragment, SignedInfo fragment, method)."""
    signature = ctx.header.signature if ctx.header is not None else None
    if signature is None or not element.id:
        raise error("the message is not signed")
    fragment = codec.encode_fragment(element, schema=SCHEMA, lenient=True)  # as received
    from cryptography import x509

    from certs import xmldsig

    try:
        info = _signed_info(signature)
        xmldsig.check_references(
            info, {element.id: fragment}, required_ids=(element.id,), suite="iso20"
        )
        key = x509.load_der_x509_certificate(leaf).public_key()
        signed = codec.encode_fragment(signature.signed_info, schema="xmldsig", lenient=True)
        xmldsig.verify_signed_info_iso20(
            signed, bytes(signature.signature_value.value), key, info.signature_method
        )
    except xmldsig.SignatureError as exc:
        raise error(str(exc)) from exc
    except ValueError as exc:
        raise error(f"contract certificate: {exc}") from exc
    return fragment, signed, info.signature_method


# --- authorization -----------------------------------------------------------------------


def _chain_of(mode: Any) -> tuple[bytes, ...]:
    chain = mode.contract_certificate_chain
    subs = chain.sub_certificates
    return (bytes(chain.certificate), *(bytes(c) for c in (subs.certificate if subs else ())))


def authorize(ctx: Context, req: Any, now: float) -> tuple[str | None, tuple[Any, ...]]:
    """A PnC AuthorizationReq: (None: accepted | the -20 code to answer, actions).

    Raises :class:`SignatureError` (FAILED_SignatureError) for a bad signature, and
    returns ``("Ongoing", ...)`` while the back end has not answered."""
    mode = req.pn_c_a_req_authorization_mode
    chain = _chain_of(mode)
    if ctx.challenge_verified:
        # a repeat while Ongoing: the same contract and challenge; when signed, signed
        # right (EVs differ on signing repeats)
        if chain != ctx.contract_chain or bytes(mode.gen_challenge) != ctx.gen_challenge:
            raise PncRefused("WARNING_ChallengeInvalid", "the repeat differs from the first")
        if ctx.header.signature is not None:
            check_signature(ctx, mode, chain[0])
        return _backend_state(ctx, now), ()
    check_signature(ctx, mode, chain[0])
    if ctx.gen_challenge is None or bytes(mode.gen_challenge) != ctx.gen_challenge:
        raise PncRefused("WARNING_ChallengeInvalid", "GenChallenge differs from the offered one")
    cfg = ctx.config
    from certs import validate

    verdict = validate.validate_contract_chain(
        chain[0],
        chain[1:],
        cfg.trust.roots,
        ctx.utc_now(),
        revoked=cfg.trust.revoked,
        suite="iso20",
    )
    if not verdict.ok:
        code = _CHAIN_CODE.get(verdict.response_code, "WARNING_CertificateValidationError")
        raise PncRefused(code, verdict.reason)
    ctx.challenge_verified = True
    ctx.payment_option = "Contract"
    ctx.contract_chain = chain
    ctx.emaid = verdict.emaid
    ctx.auth_result = None
    ctx.auth_requested = True
    ctx.started_at[AUTH_TIMER_KEY] = now
    ask = RequestAuthorization(
        kind="eMAID",
        id_token=verdict.emaid or "",
        certificate_chain=chain,
        hash_algorithm="SHA512",
        protocol=ctx.protocol,
    )
    return _backend_state(ctx, now), (ask,)


EXPIRES_SOON = dt.timedelta(days=14)


def contract_expires_soon(ctx: Context) -> bool:
    """The accepted contract certificate ends within 14 days: the PnC AuthorizationRes says
    OK_CertificateExpiresSoon instead of OK [V2G20-1979], so that the EV can renew it."""
    if not ctx.contract_chain:
        return False
    from cryptography import x509

    try:
        leaf = x509.load_der_x509_certificate(ctx.contract_chain[0])
    except ValueError:
        return False
    return bool(leaf.not_valid_after_utc - ctx.utc_now() < EXPIRES_SOON)


def _backend_state(ctx: Context, now: float) -> str | None:
    if ctx.authorized:
        return None
    result = ctx.auth_result
    if result is not None:
        code = _CERT_STATUS.get(
            result.certificate_status or "", "WARNING_GeneralPnCAuthorizationError"
        )
        raise PncRefused(code, result.reason or "authorization refused")
    return "Ongoing"


# --- certificate installation ------------------------------------------------------------


def certificate_installation(ctx: Context, req: Any, now: float) -> Reply:
    """Check the EV's signature over OEMProvisioningCertificateChain with the provisioning
    certificate's key (and its chain against the OEM roots where the station has them),
    then forward the complete EXI of the request; the answer waits for the back end
    within the CertificateInstallation budget."""
    if not ctx.config.certificate_installation or ctx.gen_challenge is None:
        raise NoCertificateAvailable("certificate installation is not offered here")
    oem = req.oem_provisioning_certificate_chain
    subs = oem.sub_certificates.certificate if oem.sub_certificates else ()
    chain = (bytes(oem.certificate), *(bytes(c) for c in subs))
    check_signature(ctx, oem, chain[0])
    trust = ctx.config.trust
    if trust.oem_roots:
        from certs import validate

        verdict = validate.validate_chain(
            chain[0],
            chain[1:],
            (*trust.oem_roots, *trust.roots),
            ctx.utc_now(),
            profile="oem",
            revoked=trust.revoked,
            suite="iso20",
        )
        if not verdict.ok:
            raise PeerError(f"OEM provisioning chain: {verdict.reason}", code="FAILED")
    forward = RequestCertificate(
        action="Install",
        exi_request=codec.encode(req, lenient=True),  # as the EV sent it, as in -2
        schema_version=COMMON_NAMESPACE,
    )
    ctx.pending_request = "CertificateInstallationReq"
    wait = (CERTIFICATE_TIMER, ctx.config.timers.certificate_installation)
    return Reply(None, Iso20State.CERTIFICATE_WAIT, (forward,), wait=wait)


def certificate_result(ctx: Context, event: CertificateResult) -> tuple[Any, bytes | None, bool]:
    """The back end's CertificateInstallationRes: (message, the EXI to send, failed).

    The EXI goes to the EV unchanged when its header carries this session's ID (the
    CSMS had the EV's whole request, header included); otherwise only the SessionID is
    put right and the message re-encoded (the signature covers SignedInstallationData,
    not the header).  Raises :class:`NoCertificateAvailable` when there is no answer, it
    does not decode, or it is another message."""
    if event.exi_response is None:
        raise NoCertificateAvailable(event.reason or "the back end gave no certificate")
    try:
        _, msg, violations = codec.decode_checked(event.exi_response, SCHEMA)
    except codec.DecodeError as exc:
        raise NoCertificateAvailable(f"the back end's EXI does not decode: {exc}") from exc
    if type(msg).__name__ != "CertificateInstallationRes":
        raise NoCertificateAvailable(f"the back end answered {type(msg).__name__}")
    failed = msg.response_code.value.startswith("FAILED")
    if bytes(msg.header.session_id) != ctx.session_id:
        msg = dataclasses.replace(
            msg, header=dataclasses.replace(msg.header, session_id=ctx.session_id)
        )
        # the back end's values outside their facets (an over-long eMAID) pass as they came
        return msg, codec.encode(msg, lenient=True) if violations else None, failed
    return msg, bytes(event.exi_response), failed


def no_certificate(ctx: Context) -> Any:
    """The CertificateInstallationRes when the back end gave no certificate in time:
    WARNING_NoCertificateAvailable, Finished, every mandatory field minimal
    [V2G20-2207] [V2G20-2225]; the session goes on (AuthorizationReq next)."""
    return failed_body(
        ctx, Schema.ISO20_COMMON, "CertificateInstallationReq", "WARNING_NoCertificateAvailable"
    )


# --- metering confirmation ---------------------------------------------------------------


def metering_confirmation(ctx: Context, req: Any, now: float, state: Iso20State) -> Reply:
    """The EV's signed meter reading, after the station asked for it (EVSENotification
    MeteringConfirmation; unasked it is a sequence error): the SessionID must be ours, the
    signature the contract key's (else FAILED_MeteringSignatureNotValid) and the reading
    one the station sent (else FAILED); the receipt goes to the OCPP transaction
    (:class:`MeteringReceipt`)."""
    data = req.signed_metering_data
    if not ctx.metering_due:
        raise SequenceError("MeteringConfirmationReq without the station asking for one")
    if bytes(data.session_id) != ctx.session_id:
        raise UnknownSession("SignedMeteringData names another SessionID")
    if not ctx.contract_chain:
        raise MeteringSignatureNotValid("no contract certificate to check the signature with")
    fragment, signed, method = check_signature(
        ctx, data, ctx.contract_chain[0], MeteringSignatureNotValid
    )
    meter = data.meter_info
    if (meter.meter_id, meter.charged_energy_reading_wh) not in ctx.metering_offered:
        raise PeerError("SignedMeteringData confirms a reading the station did not send")
    scheduled = data.scheduled_smdt_control_mode
    if ctx.control_mode == "Scheduled":
        if scheduled is None or scheduled.selected_schedule_tuple_id != ctx.sa_schedule_tuple_id:
            raise PeerError("SignedMeteringData does not name the session's schedule")
    elif data.dynamic_smdt_control_mode is None:
        raise PeerError("SignedMeteringData is not of the dynamic control mode")
    ctx.metering_due = False
    ctx.metering_offered.clear()
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = x509.load_der_x509_certificate(ctx.contract_chain[0]).public_key()
    receipt = MeteringReceipt(
        meter_id=meter.meter_id,
        energy_wh=float(meter.charged_energy_reading_wh),
        timestamp=int(meter.meter_timestamp or 0),
        signed_meter_data=fragment,
        signed_info=signed,
        signature_value=bytes(ctx.header.signature.signature_value.value),
        signing_method=method,
        public_key=key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo),
        emaid=ctx.emaid,
        discharged_energy_wh=(
            float(meter.bpt_discharged_energy_reading_wh)
            if meter.bpt_discharged_energy_reading_wh is not None
            else None
        ),
    )
    body = COMMON.MeteringConfirmationRes(
        header=header(ctx, COMMON), response_code=COMMON.ResponseCode.OK
    )
    return Reply(body, state, (receipt,))
