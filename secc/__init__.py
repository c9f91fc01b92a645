"""secc: an ISO 15118-2 SECC stack in pure Python for Linux charge controllers."""

__version__ = "0.1.0"
