"""The secc error tree.

Every error the stack raises on purpose derives from :class:`SeccError`.  Errors that
answer a peer carry the ISO 15118-2 ``ResponseCode`` they are answered with (see the
session core); the codec has its own subtree in :mod:`secc.codec.errors`.
"""

from __future__ import annotations


class SeccError(Exception):
    """Base of every error raised on purpose by the secc package."""


class ConfigError(SeccError):
    """The station configuration is invalid: names the file, key and reason."""
