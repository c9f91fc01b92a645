"""``secc demo --pcap FILE --tls-keylog FILE`` as a real process under a permissive umask:
the key log is 0600; the pcap parses (Ethernet / IPv6 / TCP with valid checksums, a
three-way handshake, contiguous sequence numbers and matching acknowledgements, a FIN
each way); it carries the TLS records as they went over the wire; and the key log's
secrets decrypt them, as Wireshark would: every key log line names a ClientHello of the
pcap, and the first application data record the EV sent in each TLS session (TLS 1.2
with the ISO 15118-2 suite, TLS 1.3 and mutual TLS 1.3 for -20) decrypts to the V2GTP
frame of its supportedAppProtocolReq.  The pcap reader and the TLS record decryption
below are written from RFC 5246 / RFC 8446 and the pcap format, not from the writer."""

from __future__ import annotations

import hmac
import ipaddress
import re
import stat
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

from secc import codec
from secc.v2gtp import Framer

LOOPBACK = ipaddress.IPv6Address("::1").packed


# ---------------------------------------------------------------- pcap and TCP reader


def _csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return int(total)


@dataclass
class Flow:
    """One direction of a TCP connection, checked segment by segment."""

    isn: int = -1
    next_seq: int = -1
    data: bytearray = field(default_factory=bytearray)
    fin: bool = False


@dataclass
class Conn:
    client_port: int
    server_port: int
    flows: dict[bool, Flow] = field(default_factory=lambda: {True: Flow(), False: Flow()})


def read_pcap(data: bytes) -> list[Conn]:
    magic, major, minor, _, _, _, linktype = struct.unpack("<IHHiIII", data[:24])
    assert (magic, major, minor, linktype) == (0xA1B2C3D4, 2, 4, 1)  # Ethernet
    conns: dict[tuple[int, int], Conn] = {}
    offset = 24
    while offset < len(data):
        _, _, incl, orig = struct.unpack("<IIII", data[offset : offset + 16])
        frame = data[offset + 16 : offset + 16 + incl]
        assert incl == orig == len(frame)
        offset += 16 + incl
        assert struct.unpack("!H", frame[12:14])[0] == 0x86DD  # IPv6
        ip = frame[14:]
        assert ip[0] >> 4 == 6 and ip[6] == 6  # version 6, next header TCP
        (plen,) = struct.unpack("!H", ip[4:6])
        src, dst, tcp = ip[8:24], ip[24:40], ip[40:]
        assert plen == len(tcp) and src == dst == LOOPBACK
        pseudo = src + dst + struct.pack("!I3xB", len(tcp), 6)
        assert _csum(pseudo + tcp) == 0xFFFF, "bad TCP checksum"
        sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", tcp[:14])
        payload = tcp[(off >> 4) * 4 :]
        syn, fin, has_ack = bool(flags & 2), bool(flags & 1), bool(flags & 0x10)
        if syn and not has_ack:  # a new connection: the EV's SYN
            conns[(sport, dport)] = Conn(sport, dport)
        from_client = (sport, dport) in conns
        conn = conns[(sport, dport) if from_client else (dport, sport)]
        flow, other = conn.flows[from_client], conn.flows[not from_client]
        if syn:
            assert flow.isn == -1 and not payload
            flow.isn, flow.next_seq = seq, (seq + 1) % 2**32
            if has_ack:
                assert ack == other.next_seq
            continue
        assert has_ack and ack == other.next_seq, "ack is not the other side's next sequence"
        assert seq == flow.next_seq, "sequence numbers are not contiguous"
        assert not (flow.fin and (payload or fin)), "data after FIN"
        flow.data += payload
        flow.next_seq = (seq + len(payload) + (1 if fin else 0)) % 2**32
        flow.fin = flow.fin or fin
    return list(conns.values())


# ------------------------------------------------------------------- TLS from the wire


def records(stream: bytes) -> list[tuple[int, bytes, bytes]]:
    """(content type, the 5-octet header, the body) of every TLS record, all of them."""
    out, offset = [], 0
    while offset < len(stream):
        header = stream[offset : offset + 5]
        (length,) = struct.unpack("!H", header[3:5])
        out.append((header[0], header, stream[offset + 5 : offset + 5 + length]))
        offset += 5 + length
    assert offset == len(stream), "a truncated TLS record"
    return out


@dataclass
class Hello:
    random: bytes
    suite: int = 0
    extensions: dict[int, bytes] = field(default_factory=dict)


def hello(record: bytes, client: bool) -> Hello:
    assert record[0] == (1 if client else 2)  # ClientHello / ServerHello
    body = record[4:]
    random = body[2:34]
    if client:
        return Hello(random)
    sid = body[34]
    at = 35 + sid
    (suite,) = struct.unpack("!H", body[at : at + 2])
    at += 3  # suite, compression
    (ext_len,) = struct.unpack("!H", body[at : at + 2])
    ext, exts = body[at + 2 : at + 2 + ext_len], {}
    while ext:
        kind, n = struct.unpack("!HH", ext[:4])
        exts[kind] = ext[4 : 4 + n]
        ext = ext[4 + n :]
    return Hello(random, suite, exts)


def _hkdf_expand_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    full = b"tls13 " + label.encode()
    info = struct.pack("!H", length) + bytes([len(full)]) + full + b"\0"
    out, block, n = b"", b"", 1
    while len(out) < length:
        block = hmac.new(secret, block + info + bytes([n]), hash_name).digest()
        out += block
        n += 1
    return out[:length]


def decrypt13(secret: bytes, suite: int, records13: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """The first record under this traffic secret (sequence number 0): its inner
    content type and plaintext."""
    hash_name, key_len = {0x1301: ("sha256", 16), 0x1302: ("sha384", 32)}.get(suite, ("sha256", 32))
    key = _hkdf_expand_label(secret, "key", key_len, hash_name)
    iv = _hkdf_expand_label(secret, "iv", 12, hash_name)
    aead = ChaCha20Poly1305(key) if suite == 0x1303 else AESGCM(key)
    for header, body in records13:
        try:
            inner = aead.decrypt(iv, body, header)  # nonce = iv XOR 0
        except Exception:
            continue  # a record under another key (the handshake's)
        content = inner.rstrip(b"\0")
        return content[-1], content[:-1]
    raise AssertionError("no record decrypts with the traffic secret")


def _prf(secret: bytes, label: bytes, seed: bytes, length: int) -> bytes:
    out, a = b"", label + seed
    while len(out) < length:
        a = hmac.new(secret, a, "sha256").digest()
        out += hmac.new(secret, a + label + seed, "sha256").digest()
    return out[:length]


def decrypt12(
    master: bytes, client: Hello, server: Hello, header: bytes, body: bytes, seq: int
) -> bytes:
    """A client record of TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256 (MAC checked), with or
    without encrypt_then_mac (RFC 7366) as the ServerHello says."""
    assert server.suite == 0xC023
    block = _prf(master, b"key expansion", server.random + client.random, 96)
    mac_key, key = block[:32], block[64:80]
    etm = 0x0016 in server.extensions
    if etm:
        body, mac = body[:-32], body[-32:]
        expect = hmac.new(
            mac_key, struct.pack("!Q", seq) + header[:3] + struct.pack("!H", len(body)) + body,
            "sha256",
        ).digest()  # fmt: skip
        assert hmac.compare_digest(mac, expect), "bad record MAC"
    dec = Cipher(algorithms.AES(key), modes.CBC(body[:16])).decryptor()
    padded = dec.update(body[16:]) + dec.finalize()
    plain = padded[: -(padded[-1] + 1)]
    if not etm:
        plain, mac = plain[:-32], plain[-32:]
        expect = hmac.new(
            mac_key, struct.pack("!Q", seq) + header[:3] + struct.pack("!H", len(plain)) + plain,
            "sha256",
        ).digest()  # fmt: skip
        assert hmac.compare_digest(mac, expect), "bad record MAC"
    return plain


def _sap_request(plain: bytes) -> str:
    frames = Framer().feed(plain)
    assert frames and frames[0].payload_type == 0x8001
    root, _ = codec.decode_document(frames[0].payload, "apphand")
    return str(root.local)


# -------------------------------------------------------------------------- the test


def test_demo_pcap_decrypts_with_its_key_log(tmp_path: Path) -> None:
    pcap, keylog = tmp_path / "demo.pcap", tmp_path / "keys.log"
    cmd = [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(tmp_path / "w")]
    cmd += ["--pcap", str(pcap), "--tls-keylog", str(keylog)]
    done = subprocess.run(
        ["sh", "-c", 'umask 000 && exec "$@"', "sh", *cmd],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "all 4 sessions charged and ended normally" in done.stdout
    assert f"pcap: {pcap} (4 V2G connections" in done.stdout
    assert stat.S_IMODE(keylog.stat().st_mode) == 0o600

    conns = read_pcap(pcap.read_bytes())
    assert len(conns) == 4
    assert all(c.flows[True].fin and c.flows[False].fin for c in conns)
    secrets: dict[tuple[str, bytes], bytes] = {}
    for line in keylog.read_text().splitlines():
        if line and not line.startswith("#"):
            label, random, secret = line.split()
            secrets[(label, bytes.fromhex(random))] = bytes.fromhex(secret)

    randoms, versions, saps = set(), [], []
    for conn in conns:
        up, down = bytes(conn.flows[True].data), bytes(conn.flows[False].data)
        if up[:2] == b"\x01\xfe":  # the plain TCP session (-2 DC EIM): V2GTP in clear
            saps.append(_sap_request(up))
            versions.append("TCP")
            continue
        ups, downs = records(up), records(down)
        assert ups[0][0] == 22 and downs[0][0] == 22  # handshake records in clear
        ch, sh = hello(ups[0][2], client=True), hello(downs[0][2], client=False)
        randoms.add(ch.random)
        app = [(h, b) for t, h, b in ups if t == 23]
        if sh.extensions.get(0x002B) == b"\x03\x04":  # supported_versions: TLS 1.3
            versions.append("TLS 1.3")
            traffic = secrets[("CLIENT_TRAFFIC_SECRET_0", ch.random)]
            assert ("SERVER_TRAFFIC_SECRET_0", ch.random) in secrets
            # the handshake's own secret decrypts the EV's Finished (under its key)
            hs = secrets[("CLIENT_HANDSHAKE_TRAFFIC_SECRET", ch.random)]
            kind, finished = decrypt13(hs, sh.suite, app)
            assert kind == 22 and finished[0] in (11, 20)  # Certificate (mutual) or Finished
            kind, plain = decrypt13(traffic, sh.suite, app)
            assert kind == 23  # application data
            saps.append(_sap_request(plain))
        else:
            versions.append("TLS 1.2")
            master = secrets[("CLIENT_RANDOM", ch.random)]
            # after ChangeCipherSpec the EV's Finished is record 0, its first data record 1
            (header, body) = app[0]
            saps.append(_sap_request(decrypt12(master, ch, sh, header, body, seq=1)))
    assert sorted(versions) == ["TCP", "TLS 1.2", "TLS 1.3", "TLS 1.3"]
    assert saps == ["supportedAppProtocolReq"] * 4
    # every key log line belongs to a ClientHello in the pcap, and vice versa
    assert {random for _, random in secrets} == randoms


def test_demo_refuses_an_unsafe_key_log_and_an_unwritable_pcap(tmp_path: Path) -> None:
    used = tmp_path / "keys.log"
    used.write_text("CLIENT_RANDOM 00 11\n")
    used.chmod(0o644)
    base = [sys.executable, "-m", "secc.cli.main", "demo", "--dir", str(tmp_path / "w")]
    done = subprocess.run(
        [*base, "--tls-keylog", str(used)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"secc demo: error: TLS key log {used}: is readable by group or others (mode 0644) "
        "and already holds secrets; refused: remove it, or chmod 600 it if nobody else "
        "could have read it\n"
    )
    assert used.read_text() == "CLIENT_RANDOM 00 11\n"
    bad = tmp_path / "no" / "such" / "demo.pcap"
    done = subprocess.run(
        [*base, "--pcap", str(bad)], capture_output=True, text=True, timeout=60, check=False
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"secc demo: error: cannot write the pcap {bad}: No such file or directory\n"
    )
    assert not (tmp_path / "w").exists()  # refused before anything was made


def test_demo_help_gives_every_default(capsys: pytest.CaptureFixture[str]) -> None:
    from secc.cli import demo

    with pytest.raises(SystemExit) as info:
        demo.main(["--help"], prog="secc demo")
    assert info.value.code == 0
    out = capsys.readouterr().out
    options = re.split(r"\n  (?=-)", out.split("options:", 1)[1])[1:]
    assert {o.split()[0] for o in options} >= {"-h,", "--dir", "--clean", "--pcap", "--tls-keylog"}
    for option in options:
        if not option.startswith("-h,"):
            assert "(default: " in " ".join(option.split()), option
