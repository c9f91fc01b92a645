"""Per-session message traces: one JSON Lines file per V2G session.

The first line is a header (``"kind": "session"``: EVSE ID, peer, TLS, start time, the
session configuration and the trust roots, enough for ``secc replay`` to rebuild the
session).  Every further line is one input to or output of the core, in order, with
``t`` (seconds since the session started on the session's clock: monotonic, less the
time the station itself ran late, see ``late``):

- ``rx``: a request from the EV (``name``, ``schema``, ``exi`` hex, ``summary``);
- ``tx``: a response (same fields);
- ``fact``: any other event fed to the core (``event`` type name, ``fields``);
- ``action``: an action other than SendResponse (``action``, ``fields``);
- ``random``: bytes the core drew (SessionID, GenChallenge), so replay can give the same;
- ``late``: the station ran late (starved or blocked, :mod:`secc.aio.driver`): a request
  read after a deadline it had not acted on yet (``request``, ``deadline``), handled as
  come just before it, or a response sent ``late`` s after the core decided it
  (``response``); ``lag`` is how far the session's clock is now behind;
- ``end``: the end reason; after a timer, ``outstanding`` names the last request and
  response, when they went, and what the EV had sent that was not read yet.

``summary`` is a small decoded view for humans (response code, EVSEProcessing,
voltages, currents, meter reading); the EXI hex is the truth.

Bounds (``[station.traces]``, :class:`secc.limits.TraceLimits`): a trace file is created
only when the connection carries a message (an idle connect writes nothing); creating
one removes the oldest traces beyond ``max_files`` / ``max_bytes``; a trace stops
growing at ``max_file_bytes`` with a ``truncated`` record.  So connects from outside
cannot fill the disk.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import logging
import struct
import time
from collections.abc import Callable, Iterator
from ipaddress import IPv6Address
from pathlib import Path
from typing import IO, Any

from secc.core.config import SessionConfig
from secc.limits import TraceLimits

log = logging.getLogger(__name__)

Record = dict[str, Any]


def _scalar(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex() if len(value) <= 16 else f"<{len(value)} bytes>"
    if isinstance(value, bool | int | float | str):
        return value
    if hasattr(value, "multiplier") and hasattr(value, "value"):
        return round(float(value.value) * 10.0 ** int(value.multiplier), 3)
    return None


def summarize(body: Any, depth: int = 0) -> dict[str, Any]:
    """The readable fields of a message body (scalars, physical values, one level of
    nested statuses)."""
    out: dict[str, Any] = {}
    if not dataclasses.is_dataclass(body):
        return out
    for f in dataclasses.fields(body):
        value = getattr(body, f.name)
        if value is None:
            continue
        scalar = _scalar(value)
        if scalar is not None:
            out[f.name] = scalar
        elif dataclasses.is_dataclass(value) and depth < 1:
            nested = summarize(value, depth + 1)
            if nested:
                out[f.name] = nested
    return out


def body_of(message: Any) -> Any:
    body = getattr(message, "body", None)
    return body.body_element if body is not None else message


def jsonable(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple | list):
        return [jsonable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return repr(value)


def config_record(config: SessionConfig) -> dict[str, Any]:
    """The replayable part of a session configuration."""
    keep = (
        "evse_id",
        "energy_modes",
        "ac",
        "dc",
        "tls",
        "protocols",
        "pnc_enabled",
        "certificate_installation",
        "internet_service",
        "metering_receipts",
        "free_service",
        "meter_id",
        "timers",
        "notification_max_delay",
        "tls13",
        "iso20_allow_tcp",
        "iso20_control_modes",
        "bpt",
        "metering_confirmation",
    )
    out = {k: jsonable(getattr(config, k)) for k in keep}
    # the vehicle chain mutual TLS verified (DER, hex): -20 Plug & Charge depends on it
    out["vehicle_chain"] = [c.public_bytes(_der()).hex() for c in config.vehicle_chain]
    return out


def _der() -> Any:
    """cryptography's DER encoding, imported when a vehicle chain is there (issue 17: a
    station without Plug & Charge sessions does not load cryptography)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


# records that make a connection worth a trace file (it carried a message)
MATERIALIZE = frozenset({"rx", "undecodable", "refused"})
_EARLY_RECORDS = 256  # records kept in memory before that (header, facts, actions)


def prune(directory: Path, limits: TraceLimits) -> int:
    """Make room for one more trace in ``directory``: remove the oldest trace and pcap
    files beyond ``limits``; returns how many were removed."""
    try:
        entries = []
        for path in directory.iterdir():
            if path.suffix in (".jsonl", ".pcap"):
                st = path.stat()
                entries.append((st.st_mtime, path.name, path, st.st_size))
    except OSError as exc:
        log.error("trace directory %s: %s", directory, exc)
        return 0
    entries.sort()
    count = len(entries) + 1  # with the one about to be written
    total = sum(e[3] for e in entries)
    removed = 0
    for _mtime, _name, path, size in entries:
        if count <= limits.max_files and total <= limits.max_bytes - limits.max_file_bytes:
            break
        try:
            path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            log.error("cannot remove the old trace %s: %s", path, exc)
            continue
        count, total, removed = count - 1, total - size, removed + 1
    return removed


class Trace:
    """Writes one session's trace; ``observer`` (if given) sees every record too.  The
    file is created at the first message (see the module docstring)."""

    def __init__(
        self,
        path: Path | None,
        header: Record,
        *,
        observer: Callable[[Record], None] | None = None,
        pcap: Pcap | None = None,
        limits: TraceLimits | None = None,
    ) -> None:
        self.path = path
        self.observer = observer
        self.pcap = pcap
        self.limits = limits or TraceLimits()
        self._file: IO[str] | None = None
        self._early: list[str] | None = [] if path is not None else None
        self._written = 0
        self.write({"kind": "session", **header})

    def _materialize(self) -> None:
        """Create the file (pruning old ones first) and write the records kept so far."""
        early, self._early = self._early, None
        assert self.path is not None and early is not None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            prune(self.path.parent, self.limits)
            self._file = self.path.open("w", encoding="utf-8")
        except OSError as exc:
            log.error("cannot write the session trace %s: %s", self.path, exc)
            self.path = None
            return
        for line in early:
            self._put(line)

    def _put(self, line: str) -> None:
        if self._file is None:
            return
        if self._written + len(line) > self.limits.max_file_bytes:
            line = json.dumps({"kind": "truncated", "bytes": self._written}) + "\n"
            self._file.write(line)
            log.warning("session trace %s reached %d bytes; truncated", self.path, self._written)
            self._close_file()
            return
        self._file.write(line)
        self._written += len(line)

    def write(self, record: Record) -> None:
        line = json.dumps(record, separators=(",", ":")) + "\n"
        if self._early is not None:
            if len(self._early) < _EARLY_RECORDS:
                self._early.append(line)
            if record.get("kind") in MATERIALIZE:
                self._materialize()
        elif self._file is not None:
            try:
                self._put(line)
            except OSError as exc:
                log.error("session trace %s: %s; no further records", self.path, exc)
                self._close_file()
        if self.observer is not None:
            self.observer(record)

    def packet(self, direction: str, frame: bytes) -> None:
        """A whole V2GTP message for the pcap (``rx``: from the EV, ``tx``: to it)."""
        if self.pcap is not None:
            self.pcap.packet(direction, frame)

    def close(self) -> None:
        if self._early is not None:  # no message ever: no file
            self._early, self.path = None, None
        self._close_file()
        if self.pcap is not None:
            self.pcap.close()

    def _close_file(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                log.error("session trace %s: %s", self.path, exc)


def pcap_header(linktype: int) -> bytes:
    """The pcap file header: microsecond timestamps, snapshot length 65535."""
    return struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, linktype)


def pcap_record(packet: bytes) -> bytes:
    """One pcap record: the packet stamped with the time now."""
    now = time.time()
    return struct.pack("<IIII", int(now), int(now % 1 * 1e6), len(packet), len(packet)) + packet


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(~total & 0xFFFF)


def ipv6_tcp(
    src: bytes,
    sport: int,
    dst: bytes,
    dport: int,
    seq: int,
    ack: int,
    flags: int,
    payload: bytes,
    *,
    checksum: bool,
) -> bytes:
    """An IPv6 packet holding one TCP segment (``checksum``: the TCP checksum filled in,
    else 0, which Wireshark does not check by default)."""
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, 5 << 4, flags, 65535, 0, 0)
    if checksum:
        pseudo = src + dst + struct.pack("!I3xB", len(tcp) + len(payload), 6)
        tcp = tcp[:16] + struct.pack("!H", _checksum(pseudo + tcp + payload)) + tcp[18:]
    return struct.pack("!IHBB", 6 << 28, len(tcp) + len(payload), 6, 64) + src + dst + tcp + payload


class Pcap:
    """A pcap beside the trace: every V2GTP message as one IPv6/TCP segment between the
    EV and the station (synthetic headers, sequence numbers counted per direction, no
    handshake), so Wireshark's V2G dissectors can show the session (decrypted: the
    payload is written as the application saw it, also for TLS sessions)."""

    LINKTYPE_IPV6 = 229

    def __init__(self, path: Path, station: tuple[str, int], peer: tuple[str, int]) -> None:
        self.path = path
        self._file: IO[bytes] | None = None
        self._opened = False  # the file is created with the first packet
        self._ends = {
            "tx": (_ip(station[0]), station[1], _ip(peer[0]), peer[1]),
            "rx": (_ip(peer[0]), peer[1], _ip(station[0]), station[1]),
        }
        self._seq = {"tx": 1, "rx": 1}

    def packet(self, direction: str, data: bytes) -> None:
        if not self._opened:
            self._opened = True
            try:
                self._file = self.path.open("wb")
                self._file.write(pcap_header(self.LINKTYPE_IPV6))
            except OSError as exc:
                log.error("cannot write the pcap %s: %s", self.path, exc)
                self._file = None
        if self._file is None:
            return
        src, sport, dst, dport = self._ends[direction]
        other = "rx" if direction == "tx" else "tx"
        seq, ack = self._seq[direction], self._seq[other]
        self._seq[direction] = (seq + len(data)) % 2**32
        packet = ipv6_tcp(src, sport, dst, dport, seq, ack, 0x18, data, checksum=False)
        try:
            self._file.write(pcap_record(packet))
        except OSError as exc:
            log.error("pcap %s: %s; no further packets", self.path, exc)
            self.close()

    def close(self) -> None:
        self._opened = True  # nothing after the close
        if self._file is not None:
            file, self._file = self._file, None
            try:
                file.close()
            except OSError as exc:
                log.error("pcap %s: %s", self.path, exc)


def _ip(address: str) -> bytes:
    try:
        return IPv6Address(address.split("%", maxsplit=1)[0]).packed
    except ValueError:
        return bytes(16)


def trace_name(evse_id: str, started: dt.datetime, session_id: str = "") -> str:
    safe = "".join(c if c.isalnum() else "-" for c in evse_id).strip("-")
    stamp = started.strftime("%Y%m%dT%H%M%S.%fZ")
    return f"{stamp}_{safe}{'_' + session_id if session_id else ''}.jsonl"


class TraceError(ValueError):
    """A trace file that cannot be read: names the file and line."""


def read_trace(path: Path) -> Iterator[Record]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceError(f"{path}: cannot read: {exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TraceError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        if not isinstance(record, dict) or not isinstance(record.get("kind"), str):
            raise TraceError(f"{path}:{number}: not a trace record (no 'kind')")
        yield record
