"""certs: ISO 15118-2 / OCPP 2.0.1 certificate toolkit (PKI, store, validation, OCSP, CSR)."""
