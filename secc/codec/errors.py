"""Codec errors: one tree, each error naming the element path and the bit offset."""

from __future__ import annotations

from secc.errors import SeccError


class CodecError(SeccError):
    """Base of every codec error.

    ``path`` lists the element names from the root to where the error happened (filled
    in as the error travels up through the generated functions); ``bit_offset`` is the
    position in the EXI stream (decode) or in the output (encode) at that moment.
    """

    def __init__(self, reason: str, bit_offset: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.bit_offset = bit_offset
        self.path: list[str] = []

    def at(self, name: str) -> None:
        self.path.insert(0, name)

    def __str__(self) -> str:
        where = "/" + "/".join(self.path) if self.path else "the stream"
        offset = "" if self.bit_offset is None else f" (bit offset {self.bit_offset})"
        return f"{self.reason} at {where}{offset}"


class DecodeError(CodecError):
    """The input is not a valid EXI stream for the schema."""


class EncodeError(CodecError):
    """The message cannot be encoded: a missing field, a value outside its facets."""
