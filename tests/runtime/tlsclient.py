"""TLS clients for the tests, independent of the server code under test:

* :func:`python_client` - Python's ssl (OpenSSL through CPython), verifying the chain;
* :class:`OpenSslClient` - OpenSSL's libssl driven through ctypes, which can put a
  ``trusted_ca_keys`` extension into the ClientHello (``SSL_CTX_add_client_custom_ext``;
  neither Python's ssl nor ``openssl s_client`` 3.0 can send it) and report the
  certificate chain the server sent.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import socket
import ssl
import struct
from pathlib import Path

from cryptography import x509


def python_client(root_file: Path | None, **overrides: object) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False  # the SECC leaf names the EVSE ID, not a host name
    if root_file is None:
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(str(root_file))
    for key, value in overrides.items():
        if key == "ciphers":
            ctx.set_ciphers(str(value))
        else:
            setattr(ctx, key, value)
    return ctx


_ADD_CB = ctypes.CFUNCTYPE(
    ctypes.c_int,
    ctypes.c_void_p,
    ctypes.c_uint,
    ctypes.POINTER(ctypes.c_void_p),
    ctypes.POINTER(ctypes.c_size_t),
    ctypes.POINTER(ctypes.c_int),
    ctypes.c_void_p,
)
_FREE_CB = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p)
SSL_CTRL_SET_MIN_PROTO_VERSION = 123
SSL_CTRL_SET_MAX_PROTO_VERSION = 124
TLS1_2_VERSION = 0x0303


def _libssl() -> ctypes.CDLL:
    # the same libssl CPython's _ssl is linked against (OpenSSL 3)
    lib = ctypes.CDLL(ctypes.util.find_library("ssl") or "libssl.so.3")
    lib.TLS_client_method.restype = ctypes.c_void_p
    lib.SSL_CTX_new.restype = ctypes.c_void_p
    lib.SSL_CTX_new.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_free.argtypes = [ctypes.c_void_p]
    lib.SSL_CTX_ctrl.restype = ctypes.c_long
    lib.SSL_CTX_ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
    lib.SSL_CTX_set_cipher_list.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
    lib.SSL_CTX_add_client_custom_ext.argtypes = [
        ctypes.c_void_p,
        ctypes.c_uint,
        _ADD_CB,
        _FREE_CB,
        ctypes.c_void_p,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.SSL_new.restype = ctypes.c_void_p
    lib.SSL_new.argtypes = [ctypes.c_void_p]
    lib.SSL_free.argtypes = [ctypes.c_void_p]
    lib.SSL_set_fd.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.SSL_connect.argtypes = [ctypes.c_void_p]
    lib.SSL_get_error.argtypes = [ctypes.c_void_p, ctypes.c_int]
    lib.SSL_get_peer_cert_chain.restype = ctypes.c_void_p
    lib.SSL_get_peer_cert_chain.argtypes = [ctypes.c_void_p]
    lib.SSL_write.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.SSL_read.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.SSL_shutdown.argtypes = [ctypes.c_void_p]
    lib.SSL_get_current_cipher.restype = ctypes.c_void_p
    lib.SSL_get_current_cipher.argtypes = [ctypes.c_void_p]
    lib.SSL_CIPHER_get_name.restype = ctypes.c_char_p
    lib.SSL_CIPHER_get_name.argtypes = [ctypes.c_void_p]
    crypto = ctypes.CDLL(ctypes.util.find_library("crypto") or "libcrypto.so.3")
    crypto.OPENSSL_sk_num.argtypes = [ctypes.c_void_p]
    crypto.OPENSSL_sk_value.restype = ctypes.c_void_p
    crypto.OPENSSL_sk_value.argtypes = [ctypes.c_void_p, ctypes.c_int]
    crypto.i2d_X509.argtypes = [ctypes.c_void_p, ctypes.POINTER(ctypes.c_void_p)]
    crypto.CRYPTO_free.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
    lib.crypto = crypto  # type: ignore[attr-defined]
    return lib


class OpenSslClient:
    """One TLS 1.2 connection through libssl; ``extensions`` maps an extension type to
    its extension_data, added to the ClientHello as is.  No chain verification: the
    test inspects :attr:`peer_chain` itself."""

    def __init__(self, extensions: dict[int, bytes], ciphers: str = "ECDHE-ECDSA-AES128-SHA256"):
        self.lib = _libssl()
        self.ctx = self.lib.SSL_CTX_new(self.lib.TLS_client_method())
        assert self.ctx
        for op in (SSL_CTRL_SET_MIN_PROTO_VERSION, SSL_CTRL_SET_MAX_PROTO_VERSION):
            assert self.lib.SSL_CTX_ctrl(self.ctx, op, TLS1_2_VERSION, None) == 1
        assert self.lib.SSL_CTX_set_cipher_list(self.ctx, ciphers.encode()) == 1
        self._buffers = {
            t: ctypes.create_string_buffer(d, len(d) or 1) for t, d in extensions.items()
        }
        self._lengths = {t: len(d) for t, d in extensions.items()}

        def add(ssl_, ext_type, out, outlen, al, arg):  # type: ignore[no-untyped-def]
            out[0] = ctypes.cast(self._buffers[ext_type], ctypes.c_void_p).value
            outlen[0] = self._lengths[ext_type]
            return 1

        self._add = _ADD_CB(add)
        self._free = _FREE_CB(0)
        for ext_type in extensions:
            ok = self.lib.SSL_CTX_add_client_custom_ext(
                self.ctx, ext_type, self._add, self._free, None, None, None
            )
            assert ok == 1, f"OpenSSL refused custom extension {ext_type}"
        self.ssl: int | None = None
        self.sock: socket.socket | None = None

    def connect(self, address: tuple[str, int]) -> None:
        self.sock = socket.create_connection(address, timeout=10)
        self.sock.settimeout(None)  # libssl needs a blocking fd; SO_RCVTIMEO bounds reads
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 10, 0))
        self.ssl = self.lib.SSL_new(self.ctx)
        assert self.ssl
        self.lib.SSL_set_fd(self.ssl, self.sock.fileno())
        rc = self.lib.SSL_connect(self.ssl)
        if rc != 1:
            raise ConnectionError(
                f"SSL_connect failed: SSL_get_error={self.lib.SSL_get_error(self.ssl, rc)}"
            )

    @property
    def cipher(self) -> str:
        return str(self.lib.SSL_CIPHER_get_name(self.lib.SSL_get_current_cipher(self.ssl)).decode())

    @property
    def peer_chain(self) -> list[x509.Certificate]:
        crypto = self.lib.crypto  # type: ignore[attr-defined]
        stack = self.lib.SSL_get_peer_cert_chain(self.ssl)
        out = []
        for i in range(crypto.OPENSSL_sk_num(stack)):
            cert = crypto.OPENSSL_sk_value(stack, i)
            buf = ctypes.c_void_p()
            n = crypto.i2d_X509(cert, ctypes.byref(buf))
            assert n > 0
            out.append(x509.load_der_x509_certificate(ctypes.string_at(buf, n)))
            crypto.CRYPTO_free(buf, None, 0)
        return out

    def write(self, data: bytes) -> None:
        assert self.lib.SSL_write(self.ssl, data, len(data)) == len(data)

    def read(self, n: int) -> bytes:
        buf = ctypes.create_string_buffer(n)
        got = self.lib.SSL_read(self.ssl, buf, n)
        return buf.raw[: max(got, 0)]

    def close(self) -> None:
        if self.ssl:
            self.lib.SSL_shutdown(self.ssl)
            self.lib.SSL_free(self.ssl)
            self.ssl = None
        if self.sock is not None:
            self.sock.close()
        if self.ctx:
            self.lib.SSL_CTX_free(self.ctx)
            self.ctx = None
