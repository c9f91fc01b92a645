"""Payment and authorization: PaymentDetails, Authorization (EIM and Plug & Charge),
CertificateInstallation / CertificateUpdate forwarding, MeteringReceipt.

Plug & Charge runs the real chain and signature code of :mod:`certs` through
:mod:`secc.core.pnc_crypto` (or the ``verifier`` the configuration injects).  Digests
cover the referenced body element encoded as an EXI fragment of the ISO-2 schema set;
the signature covers SignedInfo encoded as an xmldsig fragment.
"""

from __future__ import annotations

from typing import Any

from secc import codec
from secc.core.actions import EndReason, RequestAuthorization, RequestCertificate
from secc.core.config import PncVerifier
from secc.core.context import Context, Reply, State
from secc.core.events import CertificateResult
from secc.core.failures import (
    CertificateError,
    ChallengeInvalid,
    MeteringSignatureNotValid,
    NoCertificateAvailable,
    NotAuthorized,
    PeerError,
    SignatureError,
    UnknownSession,
)
from secc.core.iso2.setup import request_eim_authorization

CERTIFICATE_TIMER = "V2G_SECC_CertificateInstallation_Performance_Time"

# OCPP AuthorizeCertificateStatusEnumType -> ISO 15118-2 ResponseCode
_CERT_STATUS = {
    "CertificateExpired": "FAILED_CertificateExpired",
    "CertificateRevoked": "FAILED_CertificateRevoked",
    "NoCertificateAvailable": "FAILED_NoCertificateAvailable",
    "CertChainError": "FAILED_CertChainError",
    "SignatureError": "FAILED_SignatureError",
    "ContractCancelled": "FAILED_ContractCanceled",
}


def verifier(ctx: Context) -> PncVerifier:
    if ctx.config.verifier is not None:
        return ctx.config.verifier
    from secc.core.pnc_crypto import CertsVerifier

    return CertsVerifier(ctx.config.trust)


def check_signature(ctx: Context, element: Any, error: type[PeerError]) -> None:
    """The header Signature must sign ``element`` (by its Id) with the contract key."""
    signature = ctx.header.signature
    if signature is None or not element.id:
        raise error("the message is not signed")
    if not ctx.contract_chain:
        raise error("no contract certificate to check the signature with")
    # the digest covers what the EV sent, values outside their facets included
    fragments = {element.id: codec.encode_fragment(element, schema=ctx.schema.value, lenient=True)}
    reason = verifier(ctx).verify_signature(
        signature.signed_info,
        bytes(signature.signature_value.value),
        fragments,
        ctx.contract_chain[0],
    )
    if reason is not None:
        raise error(reason)


def payment_details(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    chain = req.contract_signature_cert_chain
    leaf = bytes(chain.certificate)
    subs = (
        tuple(bytes(c) for c in chain.sub_certificates.certificate)
        if chain.sub_certificates
        else ()
    )
    verdict = verifier(ctx).verify_contract_chain(leaf, subs, req.emaid, ctx.utc_now())
    if verdict.response_code != "OK":
        raise CertificateError(verdict.reason, code=verdict.response_code)
    ctx.emaid = verdict.emaid or req.emaid
    ctx.contract_chain = (leaf, *subs)
    ctx.gen_challenge = ctx.random_bytes(16)
    ctx.challenge_verified = False
    ctx.auth_result = None
    ctx.auth_requested = True
    body = mod.PaymentDetailsRes(
        response_code=mod.ResponseCode.OK,
        gen_challenge=ctx.gen_challenge,
        evse_time_stamp=int(ctx.utc_now().timestamp()),
    )
    ask = RequestAuthorization(
        kind="eMAID", id_token=ctx.emaid, certificate_chain=ctx.contract_chain
    )
    return Reply(body, State.PAYMENT_DETAILS, (ask,))


def authorization(ctx: Context, req: Any, now: float) -> Reply:
    """EIM: Ongoing until the AuthorizationResult arrives.  PnC: the GenChallenge and the
    signature are checked on every AuthorizationReq [V2G2-???]."""
    mod = ctx.mod
    actions: tuple[RequestAuthorization, ...] = ()
    if ctx.is_pnc:
        # The first AuthorizationReq must be signed over the GenChallenge; EVs differ on
        # whether they sign the repeats while EVSEProcessing=Ongoing, so a repeat may come
        # unsigned, but whatever is presented is checked [V2G2-???].
        repeat = ctx.challenge_verified and ctx.header.signature is None
        if not repeat:
            if req.gen_challenge is None or bytes(req.gen_challenge) != ctx.gen_challenge:
                raise ChallengeInvalid("GenChallenge differs from the one in PaymentDetailsRes")
            check_signature(ctx, req, SignatureError)
            ctx.challenge_verified = True
    else:
        actions = request_eim_authorization(ctx)
    result = ctx.auth_result
    if ctx.authorized:
        body = mod.AuthorizationRes(
            response_code=mod.ResponseCode.OK, evse_processing=mod.EVSEProcessing.Finished
        )
        return Reply(body, State.AUTHORIZED, actions)
    if result is not None:
        code = _CERT_STATUS.get(result.certificate_status or "", "FAILED")
        raise NotAuthorized(result.reason or "authorization refused", code=code)
    # EIM waits for the customer (RFID, app); PnC for the back end's answer
    processing = (
        mod.EVSEProcessing.Ongoing
        if ctx.is_pnc
        else mod.EVSEProcessing.Ongoing_WaitingForCustomerInteraction
    )
    body = mod.AuthorizationRes(response_code=mod.ResponseCode.OK, evse_processing=processing)
    return Reply(body, State.AUTHORIZATION, actions)


def _certificate(ctx: Context, req: Any, action: str) -> Reply:
    if not ctx.config.certificate_installation:
        raise NoCertificateAvailable("certificate installation is not enabled here")
    mod = ctx.mod
    whole = mod.V2G_Message(header=ctx.header, body=mod.Body(body_element=req))
    # the EV's request as it sent it (values outside their facets included: the EV's
    # signature covers them, and the back end decides)
    forward = RequestCertificate(action=action, exi_request=codec.encode(whole, lenient=True))
    ctx.pending_request = type(req).__name__
    wait = (CERTIFICATE_TIMER, ctx.config.timers.certificate_installation)
    return Reply(None, State.CERTIFICATE_WAIT, (forward,), wait=wait)


def certificate_installation(ctx: Context, req: Any, now: float) -> Reply:
    return _certificate(ctx, req, "Install")


def certificate_update(ctx: Context, req: Any, now: float) -> Reply:
    return _certificate(ctx, req, "Update")


def certificate_result(
    ctx: Context, event: CertificateResult
) -> tuple[Any, State, EndReason | None, tuple[Any, ...]]:
    """The back end's CertificateInstallation/UpdateRes as the message to send, and the
    values outside their XSD facets it holds (an eMAID longer than 15 characters): the
    back end's content goes to the EV as it was signed, so the session logs them and
    encodes the message leniently.

    The back end's header Signature (CPS key over the new contract data) is kept; only the
    SessionID is ours.  Raises :class:`NoCertificateAvailable` when the back end failed or
    sent something else.
    """
    expected = (ctx.pending_request or "CertificateInstallationReq")[:-3] + "Res"
    if event.exi_response is None:
        raise NoCertificateAvailable(event.reason or "the back end gave no certificate")
    try:
        _, msg, violations = codec.decode_checked(event.exi_response, ctx.schema.value)
    except codec.DecodeError as exc:
        raise NoCertificateAvailable(f"the back end's EXI does not decode: {exc}") from exc
    body = msg.body.body_element
    if type(body).__name__ != expected:
        raise NoCertificateAvailable(f"the back end answered {type(body).__name__}")
    mod = ctx.mod
    header = mod.MessageHeader(session_id=ctx.session_id, signature=msg.header.signature)
    out = mod.V2G_Message(header=header, body=msg.body)
    if body.response_code.value.startswith("FAILED"):
        return out, State.ENDED, EndReason.FAILED_RESPONSE, violations
    return out, State.CERTIFICATE_DONE, None, violations


def metering_receipt(ctx: Context, req: Any, now: float) -> Reply:
    mod = ctx.mod
    if bytes(req.session_id) != ctx.session_id:
        raise UnknownSession("MeteringReceiptReq names another SessionID")
    if ctx.is_pnc:
        check_signature(ctx, req, MeteringSignatureNotValid)
    ctx.receipt_due_at = None
    status = ctx.dc_evse_status() if ctx.is_dc else ctx.ac_evse_status()
    body = mod.MeteringReceiptRes(response_code=mod.ResponseCode.OK, evse_status=status)
    return Reply(body, State.DC_CHARGING if ctx.is_dc else State.AC_CHARGING)
