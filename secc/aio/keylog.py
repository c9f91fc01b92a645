"""The TLS key log: session secrets in the NSS key log format Wireshark reads (the
``SSLKEYLOGFILE`` convention), for the lab only: whoever reads the file decrypts every
session it records.

OpenSSL (through Python's ``ssl``) opens the file by name in append mode and adds the
secrets of every handshake as it completes (TLS 1.2: one ``CLIENT_RANDOM`` line; TLS 1.3:
the ``CLIENT_HANDSHAKE_TRAFFIC_SECRET``, ``SERVER_HANDSHAKE_TRAFFIC_SECRET``,
``CLIENT_TRAFFIC_SECRET_0``, ``SERVER_TRAFFIC_SECRET_0`` and ``EXPORTER_SECRET`` lines),
each line flushed at once.  It would create the file with the process umask (0644 with
the usual 022), so :func:`prepare_keylog` creates it first, mode 0600 whatever the
umask, and checks an existing one: a symbolic link, something else than a regular file,
or a file owned by another user is refused; an empty file readable by group or others
(``touch``-ed) is set to 0600; a non-empty one is refused, since the secrets already in
it may have been read.  :func:`enable_keylog` is the one call for a context, the
station's server contexts and the EV simulator's client context alike.
"""

from __future__ import annotations

import errno
import logging
import os
import ssl
import stat
from pathlib import Path

from secc.errors import SeccError

__all__ = ["KeylogError", "enable_keylog", "prepare_keylog"]

log = logging.getLogger(__name__)


class KeylogError(SeccError, OSError):
    """The key log cannot be written safely; the message names the file and what to do."""


def prepare_keylog(path: str | os.PathLike[str]) -> Path:
    """Create the key log with mode 0600 (or check the existing file) so that OpenSSL
    only ever appends to a file nobody else can read; returns it as a Path."""
    path = Path(path)
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise KeylogError(
                f"TLS key log {path}: is a symbolic link; refused (the secrets would go "
                "wherever it points): give the file itself"
            ) from None
        raise KeylogError(f"TLS key log {path}: cannot open it: {e.strerror or e}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise KeylogError(f"TLS key log {path}: is not a regular file")
        if st.st_uid != os.geteuid():
            raise KeylogError(
                f"TLS key log {path}: owned by uid {st.st_uid}, not by this user "
                f"(uid {os.geteuid()}); refused: its owner could read the secrets"
            )
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o077:
            if st.st_size:
                raise KeylogError(
                    f"TLS key log {path}: is readable by group or others (mode {mode:04o}) "
                    "and already holds secrets; refused: remove it, or chmod 600 it if "
                    "nobody else could have read it"
                )
            os.fchmod(fd, 0o600)
            log.info("TLS key log %s: was mode %04o (empty), set to 0600", path, mode)
        return path
    finally:
        os.close(fd)


def enable_keylog(ctx: ssl.SSLContext, path: str | os.PathLike[str]) -> Path:
    """Have ``ctx`` append the secrets of every handshake to the key log ``path``,
    created 0600 (:func:`prepare_keylog`).  Raises :class:`KeylogError` with a clear
    message when the file cannot be used safely."""
    path = prepare_keylog(path)
    before = os.stat(path, follow_symlinks=False)
    try:
        ctx.keylog_filename = str(path)
    except OSError as e:
        raise KeylogError(f"TLS key log {path}: cannot open it: {e.strerror or e}") from None
    after = os.stat(path, follow_symlinks=False)
    if (before.st_dev, before.st_ino) != (after.st_dev, after.st_ino):
        raise KeylogError(f"TLS key log {path}: was replaced while being opened; refused")
    return path
