"""Bit-packed EXI reader and writer (EXI 1.0 §7.1 datatypes, bit-packed alignment).

Both classes are deliberately small and hot: the generated codec calls them for every
event code and value.  The reader never sizes a buffer from a length it has read before
checking that the input holds that many bits.
"""

from __future__ import annotations

import re

from secc.codec.errors import DecodeError, EncodeError

# EXI strings carry XML character data, so every character must match the XML 1.0 Char
# production (#x9 | #xA | #xD | [#x20-#xD7FF] | [#xE000-#xFFFD] | [#x10000-#x10FFFF]).
# ASCII text only needs the control-character test; one precompiled search per string.
_NOT_XML_ASCII = re.compile(b"[\x00-\x08\x0b\x0c\x0e-\x1f]")
_NOT_XML_ASCII_STR = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
# The full production is compiled on the first non-ASCII string (its character set costs
# about 10 ms to compile, which importing the codec need not pay).
_NOT_XML_SET = "[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
_not_xml_pattern: list[re.Pattern[str]] = []


def _not_xml_search(text: str) -> re.Match[str] | None:
    """The first non-XML character of a (non-ASCII) string, as a match."""
    if not _not_xml_pattern:
        _not_xml_pattern.append(re.compile(_NOT_XML_SET))
    return _not_xml_pattern[0].search(text)


# short ASCII strings the writer wrote before -> (length and octets as bits, width): the
# charging loop sends the same EVSEID and meter id in every response
_STRINGS: dict[str, tuple[int, int]] = {}


def not_xml_char(value: str) -> str | None:
    """The first character of ``value`` that XML 1.0 does not allow, or None."""
    bad = _NOT_XML_ASCII_STR.search(value) if value.isascii() else _not_xml_search(value)
    return bad.group() if bad else None


class BitWriter:
    """Accumulates bits most-significant first and pads the last byte with zeros.

    Pending bits live in one integer behind a sentinel 1 bit (so no bit count is kept on
    the hot path); they move to the byte buffer when raw octets are written or when the
    integer grows past a few hundred octets, which keeps large messages linear.
    """

    __slots__ = ("acc", "buf")

    _FLUSH_BITS = 4096

    def __init__(self) -> None:
        self.buf = bytearray()
        self.acc = 1  # sentinel 1, then the pending bits

    @property
    def bit_position(self) -> int:
        return len(self.buf) * 8 + self.acc.bit_length() - 1

    def bits(self, value: int, n: int) -> None:
        self.acc = (self.acc << n) | value

    def _flush(self) -> None:
        """Move the whole octets of the pending bits to the buffer."""
        acc = self.acc
        pending = acc.bit_length() - 1
        whole = pending >> 3
        if whole:
            rem = pending & 7
            self.buf += ((acc >> rem) & ((1 << (whole << 3)) - 1)).to_bytes(whole, "big")
            self.acc = (1 << rem) | (acc & ((1 << rem) - 1))

    def uint(self, value: int) -> None:
        """Unsigned Integer: 7-bit groups, least significant first, MSB = more."""
        if value < 0x80:
            self.acc = (self.acc << 8) | value
            return
        if value < 0x4000:  # two groups, computed (no bytearray for small integers)
            self.acc = (self.acc << 16) | ((value & 0x7F) << 8) | 0x8000 | (value >> 7)
            return
        if value < 0x200000:
            self.acc = (
                (self.acc << 24)
                | ((value & 0x7F) << 16)
                | 0x808000
                | (((value >> 7) & 0x7F) << 8)
                | (value >> 14)
            )
            return
        # more groups: built as one integer (no bytearray, no bytes object)
        b = 0
        n = 0
        while value >= 0x80:
            b = (b << 8) | 0x80 | (value & 0x7F)
            value >>= 7
            n += 8
        self.acc = (self.acc << (n + 8)) | (b << 8) | value
        if self.acc.bit_length() > self._FLUSH_BITS:
            self._flush()

    def integer(self, value: int) -> None:
        """Integer: sign bit, then the magnitude (negative values store -v-1)."""
        if value < 0:
            self.acc = (self.acc << 1) | 1
            self.uint(-value - 1)
        else:
            self.acc <<= 1
            self.uint(value)

    def raw(self, data: bytes) -> None:
        """Octets at the current bit position (not aligned)."""
        n = len(data)
        if n < 16 and self.acc.bit_length() < self._FLUSH_BITS:
            self.acc = (self.acc << (n << 3)) | int.from_bytes(data, "big")
            return
        self._flush()
        rem = self.acc.bit_length() - 1
        if rem == 0:
            self.buf += data
            return
        # shift the octets behind the rem pending bits; keep the last rem bits pending
        merged = ((self.acc & ((1 << rem) - 1)) << (n << 3)) | int.from_bytes(data, "big")
        self.buf += (merged >> rem).to_bytes(n, "big")
        self.acc = (1 << rem) | (merged & ((1 << rem) - 1))

    def string(self, value: str) -> None:
        """String: Unsigned(length + 2) (never a table hit), then code points.

        Characters outside the XML 1.0 Char production are refused: the decoder refuses
        them too, and no XML peer could represent them.
        """
        hit = _STRINGS.get(value)
        if hit is not None and self.acc.bit_length() < self._FLUSH_BITS:
            # a short string written before (an EVSEID, a meter id)
            self.acc = (self.acc << hit[1]) | hit[0]
            return
        if value.isascii():
            if _NOT_XML_ASCII_STR.search(value):
                raise _not_xml(value, self.bit_position, EncodeError)
            n = len(value)
            if n < 64 and self.acc.bit_length() < self._FLUSH_BITS:
                # the length and the octets as one integer, kept for the next time
                bits = ((n + 2) << (n << 3)) | int.from_bytes(value.encode("ascii"), "big")
                if len(_STRINGS) >= 256:
                    _STRINGS.clear()
                _STRINGS[value] = (bits, (n + 1) << 3)
                self.acc = (self.acc << ((n + 1) << 3)) | bits
                return
            self.uint(n + 2)
            self.raw(value.encode("ascii"))
        else:
            if _not_xml_search(value):
                raise _not_xml(value, self.bit_position, EncodeError)
            self.uint(len(value) + 2)
            for ch in value:
                self.uint(ord(ch))

    def binary(self, value: bytes) -> None:
        self.uint(len(value))
        self.raw(value)

    def getvalue(self) -> bytes:
        acc = self.acc
        if not self.buf:  # a small message: every bit is still pending
            pending = acc.bit_length() - 1
            pad = -pending & 7
            return ((acc ^ (1 << pending)) << pad).to_bytes((pending + pad) >> 3, "big")
        self._flush()
        rem = self.acc.bit_length() - 1
        if rem:
            return bytes(self.buf) + bytes([((self.acc & ((1 << rem) - 1)) << (8 - rem)) & 0xFF])
        return bytes(self.buf)


class BitReader:
    """Reads bits from ``data``; every read checks the remaining input first.

    A window of the input (``WINDOW`` octets from where a read starts) is held as one
    integer: a read of n bits is a compare, a shift and a mask, which in CPython costs
    less than slicing and converting bytes for each read.  The window moves forward when
    a read runs past it, so every read costs the same wherever it is in the stream (a
    whole-input integer made each read cost in proportion to the input's size, and the
    decoding of a 64 kB message quadratic).  Moving ``pos`` back to the start of the
    last read (as the generated fast paths do) stays inside the window.
    """

    __slots__ = ("data", "end", "pos", "val", "wend")

    WINDOW = 128  # octets

    def __init__(self, data: bytes, bit_offset: int = 0) -> None:
        data = self.data = bytes(data)
        n = len(data)
        self.pos = bit_offset
        self.end = n << 3
        if n <= self.WINDOW:  # most messages: the window is the whole input
            self.val = int.from_bytes(data, "big")
            self.wend = n << 3  # the bit position just after the window
        else:
            self.val = 0
            self.wend = 0
            if bit_offset <= self.end:
                self._move(bit_offset)

    def _move(self, q: int) -> None:
        """Window from the octet of ``pos`` to at least the bit before ``q``."""
        start = self.pos >> 3
        stop = min(len(self.data), max(start + self.WINDOW, (q + 7) >> 3))
        self.val = int.from_bytes(self.data[start:stop], "big")
        self.wend = stop << 3

    def rewind(self, p: int) -> None:
        """Back to bit ``p`` (a fused fast path that did not match), window included."""
        self.pos = p
        self._move(p)

    def _short(self, n: int, what: str) -> DecodeError:
        return DecodeError(
            f"input ends inside {what} (needs {n} bits, {self.end - self.pos} left)", self.pos
        )

    def bits(self, n: int) -> int:
        q = self.pos + n
        if q > self.wend:
            if q > self.end:
                raise self._short(n, "an event code or value")
            self._move(q)
        self.pos = q
        return (self.val >> (self.wend - q)) & ((1 << n) - 1)

    def peek(self, n: int) -> int:
        """The next n bits without moving ``pos``; zero bits past the end of the input
        (a fused fast path checks ``pos + used <= end`` before it takes them)."""
        q = self.pos + n
        if q > self.wend:
            if self.wend < self.end:
                self._move(q)
            if q > self.wend:
                return (self.val << (q - self.wend)) & ((1 << n) - 1)
        return (self.val >> (self.wend - q)) & ((1 << n) - 1)

    def bit(self) -> int:
        q = self.pos + 1
        if q > self.wend:
            if q > self.end:
                raise self._short(1, "an event code")
            self._move(q)
        self.pos = q
        return (self.val >> (self.wend - q)) & 1

    def uint(self) -> int:
        # the first group decides: most values (lengths, small integers) have one
        b = self.bits(8)
        if b < 0x80:
            return b
        result = b & 0x7F
        shift = 7
        while True:
            b = self.bits(8)
            result |= (b & 0x7F) << shift
            if b < 0x80:
                return result
            shift += 7
            if shift > 7 * 40:  # 287 bits: X509SerialNumber (xs:integer) is up to 160 bits
                raise DecodeError("unsigned integer longer than 41 groups of 7 bits", self.pos)

    def integer(self) -> int:
        if self.bit():
            return -self.uint() - 1
        return self.uint()

    def raw(self, n: int) -> bytes:
        """n octets at the current bit position."""
        p = self.pos
        if p + n * 8 > self.end:
            raise self._short(n * 8, f"a {n}-octet value")
        shift = p & 7
        start = p >> 3
        self.pos = p + n * 8
        if shift == 0:
            return self.data[start : start + n]
        chunk = int.from_bytes(self.data[start : start + n + 1], "big")
        return ((chunk >> (8 - shift)) & ((1 << (n * 8)) - 1)).to_bytes(n, "big")

    def string(self, maxlen: int | None = None) -> str:
        """String: the length (checked against ``maxlen`` before any character is read),
        then the code points."""
        n = self.uint()
        if n < 2:
            raise DecodeError(
                "string-table hit: ISO 15118 uses no value tables (valuePartitionCapacity=0)",
                self.pos,
            )
        n -= 2
        if maxlen is not None and n > maxlen:
            raise DecodeError(
                f"a string of {n} characters is longer than {maxlen} characters", self.pos
            )
        if n * 8 > self.end - self.pos:
            raise self._short(n * 8, f"a string of {n} characters")
        # ASCII fast path: every code point below 128 is one octet with MSB 0.
        save = self.pos
        chunk = self.raw(n)
        if chunk.isascii():
            if _NOT_XML_ASCII.search(chunk):
                raise _not_xml(chunk.decode("ascii"), save, DecodeError)
            return chunk.decode("ascii")
        self.pos = save
        out = []
        for _ in range(n):
            cp = self.uint()
            if cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
                raise DecodeError(f"invalid code point {cp:#x} in string", self.pos)
            out.append(chr(cp))
        text = "".join(out)
        if _not_xml_search(text):
            raise _not_xml(text, save, DecodeError)
        return text

    def binary(self, maxlen: int | None = None) -> bytes:
        """Binary: the length (checked against ``maxlen`` first), then the octets."""
        n = self.uint()
        if maxlen is not None and n > maxlen:
            raise DecodeError(f"a value of {n} octets is longer than {maxlen} octets", self.pos)
        return self.raw(n)


def _not_xml(
    value: str, offset: int, error: type[DecodeError] | type[EncodeError]
) -> DecodeError | EncodeError:
    bad = not_xml_char(value) or "?"
    return error(
        f"character U+{ord(bad):04X} in a string is not an XML 1.0 character "
        "(EXI strings carry XML character data)",
        offset,
    )


def check_range(value: object, lo: int | None, hi: int | None, what: str) -> int:
    if type(value) is not int and not isinstance(value, int):
        raise EncodeError(f"{what}: expected an integer, got {type(value).__name__}")
    if isinstance(value, bool):
        raise EncodeError(f"{what}: expected an integer, got bool")
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        raise EncodeError(f"{what}: {value} outside its range [{lo}, {hi}]")
    return value
