"""``secc demo --pcap``: the demo's V2G connections as they went over the wire, in a pcap
Wireshark reads (and, with the TLS key log, decrypts).

Capturing loopback needs root (or tcpdump), the demo does not: each EVSE's TCP/TLS port
gets a relay on ``::1`` in front of it; the EV connects to the relay, the relay connects
to the station and copies the bytes both ways, unchanged (the TLS records, encrypted),
and writes each chunk, at the moment it passes, as a TCP segment of one synthetic
connection between the port the station saw and the station's port: Ethernet (link type
1) / IPv6 ``::1`` / TCP with the three-way handshake, sequence and acknowledgement
numbers that add up, valid checksums, and a FIN from each side when it closes.  Packets
are written as they happen, so a demo that fails still leaves what it captured.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import struct
import time
from pathlib import Path
from typing import IO

from secc.trace import ipv6_tcp, pcap_header, pcap_record

LINKTYPE_ETHERNET = 1
ETHERTYPE_IPV6 = 0x86DD
MAX_SEGMENT = 16384  # payload per synthetic segment (a loopback MTU holds 65476)
EV_MAC = bytes.fromhex("020000000001")  # locally administered: the EV's end
STATION_MAC = bytes.fromhex("020000000002")
_SYN, _ACK, _PSH, _FIN = 0x02, 0x10, 0x08, 0x01


class PcapWriter:
    """A pcap file (microsecond timestamps, Ethernet), written packet by packet."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[bytes] | None = path.open("wb")
        self._file.write(pcap_header(LINKTYPE_ETHERNET))
        self._file.flush()

    def tcp(
        self,
        src: tuple[bytes, bytes, int],
        dst: tuple[bytes, bytes, int],
        seq: int,
        ack: int,
        flags: int,
        payload: bytes = b"",
    ) -> None:
        """One TCP segment from ``src`` to ``dst`` (MAC, IPv6 address, port each)."""
        if self._file is None:
            return
        smac, sip, sport = src
        dmac, dip, dport = dst
        ip6 = ipv6_tcp(sip, sport, dip, dport, seq, ack, flags, payload, checksum=True)
        self._file.write(pcap_record(dmac + smac + struct.pack("!H", ETHERTYPE_IPV6) + ip6))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            file.close()


class Connection:
    """One captured TCP connection: the EV side (``client``) and the station's port."""

    def __init__(self, pcap: PcapWriter, client: tuple[str, int], server: tuple[str, int]):
        self.pcap = pcap
        self.ends = {
            True: (EV_MAC, ipaddress.IPv6Address(client[0]).packed, client[1]),
            False: (STATION_MAC, ipaddress.IPv6Address(server[0]).packed, server[1]),
        }
        seed = hashlib.sha256(f"{client}{server}{time.time_ns()}".encode()).digest()
        self.next_seq = {
            True: int.from_bytes(seed[:4], "big"),
            False: int.from_bytes(seed[4:8], "big"),
        }
        self.closed = {True: False, False: False}
        self._send(True, _SYN, b"", ack=0)
        self._send(False, _SYN | _ACK, b"")
        self._send(True, _ACK, b"")

    def _send(self, from_client: bool, flags: int, payload: bytes, ack: int | None = None) -> None:
        seq = self.next_seq[from_client]
        if ack is None:
            ack = self.next_seq[not from_client]
        src, dst = self.ends[from_client], self.ends[not from_client]
        self.pcap.tcp(src, dst, seq, ack, flags, payload)
        used = len(payload) + (1 if flags & (_SYN | _FIN) else 0)
        self.next_seq[from_client] = (seq + used) % 2**32

    def data(self, from_client: bool, data: bytes) -> None:
        """Bytes that went from the EV (``from_client``) or from the station."""
        for start in range(0, len(data), MAX_SEGMENT):
            self._send(from_client, _PSH | _ACK, data[start : start + MAX_SEGMENT])

    def fin(self, from_client: bool) -> None:
        """One side closed its direction: its FIN, and the other side's ACK."""
        if self.closed[from_client]:
            return
        self.closed[from_client] = True
        self._send(from_client, _FIN | _ACK, b"")
        self._send(not from_client, _ACK, b"")


class Capture:
    """Relays in front of the station's ports that write every connection to one pcap."""

    def __init__(self, path: Path) -> None:
        self.pcap = PcapWriter(path)
        self.connections = 0
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def relay(self, host: str, port: int) -> int:
        """A relay on ``host`` forwarding to ``[host]:port``; returns the relay's port."""

        async def handle(ev_r: asyncio.StreamReader, ev_w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            if task is not None:
                self._tasks.add(task)
            try:
                await self._connection(host, port, ev_r, ev_w)
            finally:
                if task is not None:
                    self._tasks.discard(task)

        server = await asyncio.start_server(handle, host, 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _connection(
        self, host: str, port: int, ev_r: asyncio.StreamReader, ev_w: asyncio.StreamWriter
    ) -> None:
        try:
            st_r, st_w = await asyncio.open_connection(host, port)
        except OSError:
            ev_w.close()
            return
        seen_as = st_w.get_extra_info("sockname")  # the EV's address as the station sees it
        conn = Connection(self.pcap, (seen_as[0], seen_as[1]), (host, port))
        self.connections += 1

        async def pump(r: asyncio.StreamReader, w: asyncio.StreamWriter, from_ev: bool) -> None:
            try:
                while data := await r.read(65536):
                    conn.data(from_ev, data)  # recorded before it can be answered
                    w.write(data)
                    await w.drain()
            except OSError:
                pass
            finally:
                conn.fin(from_ev)
                with contextlib.suppress(OSError, RuntimeError):
                    if w.can_write_eof():
                        w.write_eof()

        try:
            await asyncio.gather(pump(ev_r, st_w, True), pump(st_r, ev_w, False))
        finally:
            for w in (ev_w, st_w):
                w.close()
                with contextlib.suppress(OSError):
                    await w.wait_closed()

    async def aclose(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.pcap.close()
