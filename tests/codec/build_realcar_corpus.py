"""Rebuild ``realcar_corpus.jsonl.gz``: the EXI streams of public captures of real charging
sessions (production cars and chargers), for ``test_realcar_corpus.py``.

Not a test (the tests read the stored corpus and need no network).  Usage::

    python tests/codec/build_realcar_corpus.py OWNER/NAME=GITDIR [OWNER/NAME=GITDIR ...]

where each GITDIR is a git directory (a bare mirror or a checkout's ``.git``) of a public
repository holding captures, e.g. ``uhi22/pyPLC`` and ``dspace-group/dsV2Gshark``.  Every
``.pcap`` / ``.pcapng`` of the newest commit is read (TCP reassembled per connection,
V2GTP frames cut out, TLS decrypted where the capture discloses its secrets); a pyPLC
``*.decoded.txt`` (hex of each packet's EXI, written by pyPLC's converter) counts only
when its capture is not in the repository; a ccs32clara ``*.claralog`` (its serial log,
with the hex of every V2GTP frame sent and received) counts instead of the files
converted from it.  Files that only older commits hold are read at the commit before
their deletion (each blob once).  The schema of
a stream comes from its V2GTP payload type (ISO 15118-20) or from the
supportedAppProtocol handshake of its connection (the SchemaID the charger chose), else
from the root element code (DIN ``809a``, ISO-2 ``8098``, handshake ``80 0x/4x``).

Identical streams of one file are stored once with their ``count``.  Only streams from
public captures: nothing the project's own encoder produced.  TLS-protected sessions are
skipped (their payloads are encrypted).
"""

from __future__ import annotations

import gzip
import json
import re
import struct
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

OUT = Path(__file__).resolve().parent / "realcar_corpus.jsonl.gz"

APPHAND_NS = {
    "urn:din:70121:2012:MsgDef": "din",
    "urn:iso:15118:2:2013:MsgDef": "iso2",
    "urn:iso:15118:2:2010:MsgDef": "iso2-2010",
    "urn:iso:std:iso:15118:-20:DC": "iso20-dc",
    "urn:iso:std:iso:15118:-20:AC": "iso20-ac",
}
PAYLOAD_SCHEMA = {
    0x8002: "iso20-common",
    0x8003: "iso20-ac",
    0x8004: "iso20-dc",
    0x8005: "iso20-acdp",
    0x8006: "iso20-wpt",
}


# --- capture files ---------------------------------------------------------------------


def packets(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(link type, frame) of every packet in a pcap or pcapng file."""
    if len(data) < 24:
        return
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        yield from _pcap(data, "<")
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        yield from _pcap(data, ">")
    elif magic == b"\x0a\x0d\x0d\x0a":
        yield from _pcapng(data)


def _pcap(data: bytes, e: str) -> Iterator[tuple[int, bytes]]:
    link = struct.unpack_from(e + "I", data, 20)[0] & 0xFFFF
    pos = 24
    while pos + 16 <= len(data):
        incl = struct.unpack_from(e + "I", data, pos + 8)[0]
        yield link, data[pos + 16 : pos + 16 + incl]
        pos += 16 + incl


def _pcapng(data: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    e = "<"
    links: list[int] = []
    while pos + 12 <= len(data):
        if data[pos : pos + 4] == b"\x0a\x0d\x0d\x0a":
            e = "<" if data[pos + 8 : pos + 12] == b"\x4d\x3c\x2b\x1a" else ">"
            links = []
        btype, blen = struct.unpack_from(e + "II", data, pos)
        if blen < 12 or pos + blen > len(data):
            return
        body = data[pos + 8 : pos + blen - 4]
        if btype == 1:
            links.append(struct.unpack_from(e + "H", body, 0)[0])
        elif btype == 6 and len(body) >= 20:
            iface, _, _, cap = struct.unpack_from(e + "IIII", body, 0)
            if iface < len(links):
                yield links[iface], body[20 : 20 + cap]
        elif btype == 3 and links:
            yield links[0], body[4:]
        elif btype == 2 and len(body) >= 20:
            iface = struct.unpack_from(e + "H", body, 0)[0]
            cap = struct.unpack_from(e + "I", body, 12)[0]
            if iface < len(links):
                yield links[iface], body[20 : 20 + cap]
        pos += blen


Flow = tuple[bytes, int, bytes, int]


def tcp_segment(link: int, frame: bytes) -> tuple[Flow, int, int, bytes] | None:
    """((src, sport, dst, dport), seq, flags, payload) of a TCP segment, else None."""
    if link == 1:  # Ethernet
        et, off = struct.unpack_from(">H", frame, 12)[0] if len(frame) >= 14 else 0, 14
        while et in (0x8100, 0x88A8) and len(frame) >= off + 4:
            et = struct.unpack_from(">H", frame, off + 2)[0]
            off += 4
    elif link == 113:  # Linux cooked
        et, off = (struct.unpack_from(">H", frame, 14)[0] if len(frame) >= 16 else 0), 16
    elif link == 276:  # Linux cooked v2
        et, off = (struct.unpack_from(">H", frame, 0)[0] if len(frame) >= 20 else 0), 20
    elif link in (101, 228, 229, 12, 14):  # raw IP
        et, off = (0x0800 if frame[:1] and frame[0] >> 4 == 4 else 0x86DD), 0
    elif link in (0, 108):  # BSD loopback
        et, off = (0x0800 if len(frame) > 4 and frame[4] >> 4 == 4 else 0x86DD), 4
    else:
        return None
    if et == 0x86DD and len(frame) >= off + 40:
        nxt, src, dst = frame[off + 6], frame[off + 8 : off + 24], frame[off + 24 : off + 40]
        plen = struct.unpack_from(">H", frame, off + 4)[0]
        end = off + 40 + plen
        off += 40
        while nxt in (0, 43, 60) and len(frame) >= off + 8:  # extension headers
            nxt, off = frame[off], off + 8 + frame[off + 1] * 8
    elif et == 0x0800 and len(frame) >= off + 20:
        ihl = (frame[off] & 0x0F) * 4
        nxt, src, dst = frame[off + 9], frame[off + 12 : off + 16], frame[off + 16 : off + 20]
        end = off + struct.unpack_from(">H", frame, off + 2)[0]
        off += ihl
    else:
        return None
    if nxt == 17 and len(frame) >= off + 8:  # UDP: seq 0, flags -1
        sport, dport = struct.unpack_from(">HH", frame, off)
        return (src, sport, dst, dport), 0, -1, frame[off + 8 : min(end, len(frame))]
    if nxt != 6 or len(frame) < off + 20:
        return None
    sport, dport, seq = struct.unpack_from(">HHI", frame, off)
    doff = (frame[off + 12] >> 4) * 4
    flags = frame[off + 13]
    payload = frame[off + doff : min(end, len(frame))]
    return (src, sport, dst, dport), seq, flags, payload


_SECRET = re.compile(rb"([A-Z_]+?)(?:_0)? ([0-9a-fA-F]{64}) ([0-9a-fA-F]{64,192})")


def streams_of(data: bytes) -> list[tuple[tuple[bytes, int, bytes, int], bytes]]:
    """Each TCP direction's bytes in sequence order (retransmissions dropped); TLS
    sessions whose secrets the capture discloses (NSS key log lines in UDP packets, as
    the dSPACE test system sends them) decrypted."""
    flows: dict[tuple[bytes, int, bytes, int], dict[int, bytes]] = {}
    order: list[tuple[bytes, int, bytes, int]] = []
    secrets: dict[tuple[str, bytes], bytes] = {}
    for link, frame in packets(data):
        seg = tcp_segment(link, frame)
        if seg is None:
            continue
        key, seq, flags, payload = seg
        if flags == -1:
            for m in _SECRET.finditer(payload):
                label = m.group(1).decode()
                secrets[(label, bytes.fromhex(m.group(2).decode()))] = bytes.fromhex(
                    m.group(3).decode()
                )
            continue
        if key not in flows:
            flows[key] = {}
            order.append(key)
        if payload and not flags & 0x02:
            flows[key].setdefault(seq, payload)
    out = []
    for key in order:
        segs = flows.get(key)
        if not segs:
            continue
        base = min(segs)
        buf = bytearray()
        for seq in sorted(segs, key=lambda s: (s - base) & 0xFFFFFFFF):
            rel = (seq - base) & 0xFFFFFFFF
            chunk = segs[seq]
            if rel + len(chunk) <= len(buf):
                continue  # retransmitted
            # after a gap (a packet the capture missed) the frames are resynchronized
            buf += chunk[len(buf) - rel :] if rel <= len(buf) else chunk
        out.append((key, bytes(buf)))
    if secrets:
        out = tls_decrypted(out, secrets)
    return out


# --- TLS with disclosed secrets ----------------------------------------------------------


def _records(buf: bytes) -> Iterator[tuple[int, bytes]]:
    pos = 0
    while pos + 5 <= len(buf):
        rtype, n = buf[pos], int.from_bytes(buf[pos + 3 : pos + 5], "big")
        yield rtype, buf[pos + 5 : pos + 5 + n]
        pos += 5 + n


def _hello(buf: bytes) -> tuple[bytes, int] | None:
    """(random, cipher suite) of the ClientHello / ServerHello at the start of a flow."""
    for rtype, body in _records(buf):
        if rtype == 22 and body[:1] in (b"\x01", b"\x02") and len(body) > 40:
            random = body[6:38]
            if body[0] == 1:
                return random, 0
            sid = body[38]
            return random, int.from_bytes(body[39 + sid : 41 + sid], "big")
        return None
    return None


def _tls12_keys(master: bytes, client_random: bytes, server_random: bytes, n: int) -> bytes:
    import hashlib
    import hmac

    seed = b"key expansion" + server_random + client_random
    out, a = b"", seed
    while len(out) < n:
        a = hmac.new(master, a, hashlib.sha256).digest()
        out += hmac.new(master, a + seed, hashlib.sha256).digest()
    return out[:n]


def _hkdf_label(secret: bytes, label: str, length: int, hash_name: str) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

    full = b"tls13 " + label.encode()
    info = length.to_bytes(2, "big") + bytes([len(full)]) + full + b"\x00"
    algorithm = hashes.SHA384() if hash_name == "sha384" else hashes.SHA256()
    return HKDFExpand(algorithm, length, info).derive(secret)


def _decrypt_tls12(
    buf: bytes, master: bytes, cr: bytes, sr: bytes, suite: int, client: bool
) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    gcm = suite in (0xC02B, 0xC02F, 0x009C)
    if gcm:  # AES-128-GCM: keys 16+16, salts 4+4
        kb = _tls12_keys(master, cr, sr, 40)
        key, salt = (kb[0:16], kb[32:36]) if client else (kb[16:32], kb[36:40])
    else:  # AES-128-CBC with HMAC-SHA256: MAC keys 32+32, keys 16+16
        kb = _tls12_keys(master, cr, sr, 96)
        key = kb[64:80] if client else kb[80:96]
    out = bytearray()
    encrypted = False
    seq = 0
    for rtype, body in _records(buf):
        if rtype == 20:
            encrypted = True
            continue
        if not encrypted:
            continue
        if gcm:
            nonce = salt + body[:8]
            aad = (
                seq.to_bytes(8, "big") + bytes([rtype, 3, 3]) + (len(body) - 24).to_bytes(2, "big")
            )
            plain = AESGCM(key).decrypt(nonce, body[8:], aad)
        else:
            d = Cipher(algorithms.AES(key), modes.CBC(body[:16])).decryptor()
            padded = d.update(body[16:]) + d.finalize()
            plain = padded[: len(padded) - padded[-1] - 1 - 32]
        seq += 1
        if rtype == 23:
            out += plain
    return bytes(out)


def _decrypt_tls13(
    buf: bytes, secrets: dict[tuple[str, bytes], bytes], cr: bytes, suite: int, client: bool
) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM, ChaCha20Poly1305

    side = "CLIENT" if client else "SERVER"
    keys = []
    for label in (f"{side}_HANDSHAKE_TRAFFIC_SECRET", f"{side}_TRAFFIC_SECRET"):
        secret = secrets.get((label, cr))
        if secret is None:
            return b""
        hash_name = "sha384" if suite == 0x1302 else "sha256"
        klen = 32 if suite in (0x1302, 0x1303) else 16
        key = _hkdf_label(secret, "key", klen, hash_name)
        iv = _hkdf_label(secret, "iv", 12, hash_name)
        aead = ChaCha20Poly1305(key) if suite == 0x1303 else AESGCM(key)
        keys.append([aead, iv, 0])
    out = bytearray()
    stage = 0
    for rtype, body in _records(buf):
        if rtype != 23:
            continue
        header = bytes([23, 3, 3]) + len(body).to_bytes(2, "big")
        for k in range(stage, 2):
            aead, iv, seq = keys[k]
            nonce = (int.from_bytes(iv, "big") ^ seq).to_bytes(12, "big")
            try:
                plain = aead.decrypt(nonce, body, header)
            except Exception:  # the other key's record
                continue
            keys[k][2] += 1
            stage = k
            inner = plain.rstrip(b"\0")
            if inner and inner[-1] == 23:
                out += inner[:-1]
            break
    return bytes(out)


def tls_decrypted(
    flows: list[tuple[tuple[bytes, int, bytes, int], bytes]],
    secrets: dict[tuple[str, bytes], bytes],
) -> list[tuple[tuple[bytes, int, bytes, int], bytes]]:
    """The flows with each TLS connection's application data in place of its records."""
    by_key = dict(flows)
    out = []
    for key, buf in flows:
        if buf[:2] != b"\x16\x03":
            out.append((key, buf))
            continue
        src, sport, dst, dport = key
        back = by_key.get((dst, dport, src, sport), b"")
        mine, theirs = _hello(buf), _hello(back)
        if mine is None or theirs is None:
            continue
        client = mine[1] == 0
        cr, sr = (mine[0], theirs[0]) if client else (theirs[0], mine[0])
        suite = theirs[1] if client else mine[1]
        try:
            if suite >> 8 == 0x13:
                plain = _decrypt_tls13(buf, secrets, cr, suite, client)
            elif ("CLIENT_RANDOM", cr) in secrets:
                master = secrets[("CLIENT_RANDOM", cr)]
                plain = _decrypt_tls12(buf, master, cr, sr, suite, client)
            else:
                continue
        except Exception as exc:  # an undecryptable session is left out
            print(f"TLS session not decrypted: {exc!r}", file=sys.stderr)
            continue
        if plain:
            out.append((key, plain))
    return out


_V2GTP = re.compile(rb"\x01\xfe(\x80[\x01-\x06])")


def v2gtp_frames(buf: bytes) -> Iterator[tuple[int, bytes]]:
    """(payload type, payload) of every V2GTP frame in one direction's bytes."""
    pos = 0
    while True:
        m = _V2GTP.search(buf, pos)
        if m is None or m.start() + 8 > len(buf):
            return
        ptype = int.from_bytes(m.group(1), "big")
        n = int.from_bytes(buf[m.start() + 4 : m.start() + 8], "big")
        body = buf[m.start() + 8 : m.start() + 8 + n]
        if len(body) == n and n and body[0] == 0x80:
            yield ptype, body
            pos = m.start() + 8 + n
        else:
            pos = m.start() + 2


# --- schemas ---------------------------------------------------------------------------


def _by_root(exi: bytes) -> str | None:
    if len(exi) < 2:
        return None
    if exi[1] < 0x80:
        return "apphand"
    return {0x9A: "din", 0x98: "iso2"}.get(exi[1] & 0xFE)


def chosen_schema(req: bytes, res: bytes) -> str | None:
    """The schema a handshake agreed on (needs the project's codec)."""
    from secc import codec

    try:
        q = codec.decode(req, "apphand")
        s = codec.decode(res, "apphand")
    except codec.CodecError:
        return None
    sid = getattr(s, "schema_id", None)
    for p in getattr(q, "app_protocol", ()):
        if p.schema_id == sid:
            return APPHAND_NS.get(p.protocol_namespace)
    return None


def session_streams(data: bytes) -> Iterator[tuple[str, bytes]]:
    """(schema, EXI) of every V2GTP message of a capture, connection by connection."""
    flows = streams_of(data)
    frames = {key: list(v2gtp_frames(buf)) for key, buf in flows}
    for key, msgs in frames.items():
        src, sport, dst, dport = key
        back = frames.get((dst, dport, src, sport), [])
        agreed = None
        hand = [exi for t, exi in msgs + back if t == 0x8001 and _by_root(exi) == "apphand"]
        reqs = [e for e in hand if e[1] < 0x40]
        ress = [e for e in hand if 0x40 <= e[1] < 0x80]
        if reqs and ress:
            agreed = chosen_schema(reqs[0], ress[0])
        for ptype, exi in msgs:
            if ptype in PAYLOAD_SCHEMA:
                schema = PAYLOAD_SCHEMA[ptype]
            else:
                root = _by_root(exi)
                if root == "apphand" or agreed is None or agreed.startswith("iso20"):
                    schema = root or "unknown"
                else:
                    schema = agreed
            yield schema, exi


def decoded_txt_streams(text: str) -> Iterator[tuple[str, bytes]]:
    """pyPLC's converter output: ``Packet #N [time] HEX means:`` then a JSON with the
    schema it decoded with."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"Packet #\d+ \[[^\]]*\] ([0-9a-fA-F]+) means:", line)
        if not m:
            continue
        exi = bytes.fromhex(m.group(1)) if len(m.group(1)) % 2 == 0 else b""
        if not exi or exi[0] != 0x80:
            continue
        schema = _by_root(exi) or "unknown"
        for follow in lines[i + 1 : i + 8]:
            if '"schema": "ISO' in follow and schema == "din":
                schema = "iso2"
        yield schema, exi


# --- the corpus ------------------------------------------------------------------------


def git(gitdir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", gitdir, *args], check=True, capture_output=True
    ).stdout


def _readable(gitdir: str, commit: str, path: str) -> bool:
    args = ["git", "--git-dir", gitdir, "cat-file", "-e", f"{commit}:{path}"]
    done = subprocess.run(args, check=False, capture_output=True)
    return done.returncode == 0


def _files(gitdir: str) -> list[tuple[str, str, str]]:
    """(commit, path, blob) of every capture or converter log: the newest commit's, then
    those only older commits hold (deleted since), each blob once."""
    head = git(gitdir, "rev-parse", "HEAD").decode().strip()
    out: list[tuple[str, str, str]] = []
    for line in git(gitdir, "ls-tree", "-r", "HEAD").decode().splitlines():
        meta, path = line.split("\t", 1)
        out.append((head, path, meta.split()[2]))
    # a mirror's history may be incomplete: what git can read of it
    log = subprocess.run(
        [
            "git",
            "--git-dir",
            gitdir,
            "log",
            "--all",
            "--diff-filter=D",
            "--name-only",
            "--format=C %H",
        ],
        check=False,
        capture_output=True,
    ).stdout
    deleting = ""
    for line in log.decode().splitlines():
        if line.startswith("C "):
            deleting = line[2:]
        elif line and _wanted(line):
            try:
                parent = git(gitdir, "rev-parse", f"{deleting}^").decode().strip()
                blob = git(gitdir, "rev-parse", f"{parent}:{line}").decode().strip()
            except subprocess.CalledProcessError:
                continue
            out.append((parent, line, blob))
    seen: set[str] = set()
    unique = []
    for commit, path, blob in out:
        if blob not in seen and _wanted(path):
            seen.add(blob)
            unique.append((commit, path, blob))
    return unique


def _refused(exi: bytes, schema: str) -> str:
    """Why the codec refuses a stream (empty when it decodes and re-encodes byte for
    byte, up to trailing zero octets): recorded, so that the test notices any change."""
    from secc import codec

    try:
        got = codec.decode_checked(exi, schema)
        again = codec.encode(got.message, schema, lenient=True)
    except codec.CodecError as exc:
        return str(exc)
    if exi[: len(again)] != again or exi[len(again) :].strip(b"\0"):
        return f"re-encodes as {again.hex()}"  # e.g. padding bits that are not zero
    return ""


def _wanted(path: str) -> bool:
    low = path.lower()
    if ".claralog." in low:
        return False  # converted from the .claralog, which is read
    return low.endswith((".pcap", ".pcapng", ".decoded.txt", ".claralog"))


_CLARA = re.compile(r"(?:TCP will transmit|Data received):\s+([0-9a-fA-F]+)")


def claralog_streams(text: str) -> Iterator[tuple[str, bytes]]:
    """ccs32clara's serial log (``TCP will transmit: <V2GTP hex>`` / ``Data received:
    <V2GTP hex>``): one session a log; the schema from its handshake, else the root."""
    frames: list[tuple[int, bytes]] = []
    for m in _CLARA.finditer(text):
        raw = m.group(1)
        if len(raw) % 2 == 0:
            frames += v2gtp_frames(bytes.fromhex(raw))
    hand = [e for t, e in frames if t == 0x8001 and _by_root(e) == "apphand"]
    reqs = [e for e in hand if e[1] < 0x40]
    ress = [e for e in hand if 0x40 <= e[1] < 0x80]
    agreed = chosen_schema(reqs[0], ress[0]) if reqs and ress else None
    for ptype, exi in frames:
        root = _by_root(exi)
        if ptype in PAYLOAD_SCHEMA:
            yield PAYLOAD_SCHEMA[ptype], exi
        elif root == "apphand" or agreed is None:
            yield root or "unknown", exi
        else:
            yield agreed, exi


def build(sources: list[tuple[str, str]]) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for repo, gitdir in sources:
        files = _files(gitdir)
        present = {(c, p) for c, p, _ in files}
        for commit, path, blob_id in files:
            if path.lower().endswith(".claralog"):
                kind = "clara"
            elif path.lower().endswith(".decoded.txt"):
                stem = path[: -len(".decoded.txt")]
                captures = {stem, stem + "ng", stem + ".pcapng", stem + ".pcap"}
                if any((commit, c) in present and _readable(gitdir, commit, c) for c in captures):
                    continue  # the capture itself is read
                kind = "txt"
            else:
                kind = "pcap"
            try:
                blob = git(gitdir, "cat-file", "blob", blob_id)
            except subprocess.CalledProcessError:
                continue  # listed but absent (a large file the mirror does not hold)
            if kind == "pcap":
                found = session_streams(blob)
            elif kind == "clara":
                found = claralog_streams(blob.decode("utf-8", "replace"))
            else:
                found = decoded_txt_streams(blob.decode("utf-8", "replace"))
            counts: Counter[tuple[str, bytes]] = Counter(found)
            for (schema, exi), n in counts.items():
                if schema in ("unknown", "iso2-2010"):
                    continue
                row: dict[str, object] = {
                    "hex": exi.hex(),
                    "schema": schema,
                    "count": n,
                    "repo": repo,
                    "commit": commit,
                    "path": path,
                }
                refused = _refused(exi, schema)
                if refused:
                    row["refused"] = refused
                rows.append(row)
            print(f"{repo} {commit[:8]} {path}: {sum(counts.values())} streams", file=sys.stderr)
    return rows


def main(argv: list[str]) -> int:
    sources = [tuple(a.split("=", 1)) for a in argv]
    if not sources or any(len(s) != 2 for s in sources):
        print(__doc__, file=sys.stderr)
        return 2
    rows = build(sources)  # type: ignore[arg-type]
    text = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows)
    with OUT.open("wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        f.write(text.encode("utf-8"))  # mtime 0: the same sources give the same file
    total = sum(int(r["count"]) for r in rows)  # type: ignore[call-overload]
    print(f"{OUT.name}: {len(rows)} distinct streams ({total} in all)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
