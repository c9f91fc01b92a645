"""The Plug & Charge crypto of the core, on the pure :mod:`certs` modules.

Contract chains go through :func:`certs.validate.validate_contract_chain`; signatures
through :mod:`certs.xmldsig` (digests of the referenced EXI fragments, ECDSA P-256 /
SHA-256 raw r||s over the SignedInfo encoded as an xmldsig fragment).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from secc import codec
from secc.core.config import ContractVerdict, PncTrust

if TYPE_CHECKING:  # loaded with the first Plug & Charge check (issue 17)
    from certs import xmldsig


class CertsVerifier:
    """:class:`secc.core.config.PncVerifier` over the station's trust anchors."""

    def __init__(self, trust: PncTrust) -> None:
        self.trust = trust

    def verify_contract_chain(
        self, leaf: bytes, sub_cas: Sequence[bytes], emaid: str, utc_now: dt.datetime
    ) -> ContractVerdict:
        from certs import validate

        verdict = validate.validate_contract_chain(
            leaf,
            sub_cas,
            self.trust.roots,
            utc_now,
            claimed_emaid=emaid,
            revoked=self.trust.revoked,
        )
        return ContractVerdict(verdict.response_code, verdict.reason, verdict.emaid)

    def verify_signature(
        self, signed_info: object, signature_value: bytes, fragments: dict[str, bytes], leaf: bytes
    ) -> str | None:
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec

        from certs import xmldsig

        try:
            info = to_certs_signed_info(signed_info)
            xmldsig.check_references(info, fragments, required_ids=tuple(fragments))
            key = x509.load_der_x509_certificate(leaf).public_key()
            if not isinstance(key, ec.EllipticCurvePublicKey):
                return "the contract certificate's key is not an EC key"
            signed = codec.encode_fragment(signed_info, schema="xmldsig", lenient=True)
            xmldsig.verify_signed_info(signed, signature_value, key)
        except xmldsig.SignatureError as exc:
            return str(exc)
        except ValueError as exc:
            return f"contract certificate: {exc}"
        return None


def to_certs_signed_info(signed_info: Any) -> xmldsig.SignedInfo:
    """The generated xmldsig SignedInfo as :class:`certs.xmldsig.SignedInfo`."""
    from certs import xmldsig

    refs = tuple(
        xmldsig.Reference(
            uri=ref.uri or "",
            digest_value=bytes(ref.digest_value),
            digest_method=ref.digest_method.algorithm,
            transforms=tuple(t.algorithm for t in ref.transforms.transform)
            if ref.transforms is not None
            else (),
        )
        for ref in signed_info.reference
    )
    return xmldsig.SignedInfo(
        references=refs,
        canonicalization_method=signed_info.canonicalization_method.algorithm,
        signature_method=signed_info.signature_method.algorithm,
    )
