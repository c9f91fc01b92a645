"""The security tests share the station tests' fixtures (test PKI, configurations)."""

from tests.station.conftest import pki_dir

__all__ = ["pki_dir"]
