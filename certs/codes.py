"""The ISO 15118 response codes :mod:`certs.validate` judges certificate chains with,
without cryptography: the session core maps them to its own codes at import time, and
importing :mod:`certs.validate` (cryptography, ~9 MiB resident) waits for the first
Plug & Charge check (issue 17).  Pure."""

from __future__ import annotations

OK = "OK"
FAILED_NO_CERTIFICATE_AVAILABLE = "FAILED_NoCertificateAvailable"
FAILED_CERT_CHAIN_ERROR = "FAILED_CertChainError"
FAILED_CERTIFICATE_EXPIRED = "FAILED_CertificateExpired"
FAILED_CERTIFICATE_REVOKED = "FAILED_CertificateRevoked"
FAILED_SIGNATURE_ERROR = "FAILED_SignatureError"
# ISO 15118-20 only: a certificate of the path not yet valid (-2 reports it as expired)
FAILED_CERTIFICATE_NOT_YET_VALID = "FAILED_CertificateNotYetValid"
