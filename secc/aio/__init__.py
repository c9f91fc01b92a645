"""Asyncio adapters: the only sockets / ssl / event-loop code of the SECC.

* :mod:`secc.aio.sdp_server` - UDP 15118 on the PLC interface, answering SDP requests.
* :mod:`secc.aio.v2g_server` - TCP/TLS server: V2GTP framing, EXI decoding, handler calls.
* :mod:`secc.aio.tls` - the ISO 15118-2 TLS profile and the trusted_ca_keys chain choice.
* :mod:`secc.aio.clienthello` - pure ClientHello parser the TLS choice relies on.
"""
