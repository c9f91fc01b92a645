"""eMAID (e-mobility account identifier) syntax and check digit.

The eMAID is written ``CC-PPP-IIIIIIIII-D`` (country code, provider ID, eMA instance, check
digit); the separators are optional and ISO 15118-2 carries the normalized form (upper case,
no separators, 14 or 15 characters) in the contract certificate's CN and in
PaymentDetailsReq.eMAID.

The check digit is the one of DIN SPEC 91286 / eMI3 "Check Digit Calculation for
Contract-IDs": every character a (0-9, A-Z as 0..35) is split into a pair over Z2
(q = a // 9, written as two bits) and a pair over Z3 (r = a % 9, written as two trits). The
pair of the character at position i (1-based) is multiplied by the i-th power of
P1 = [[0, 1], [1, 1]] over Z2 and of P2 = [[0, 1], [1, 2]] over Z3, and the check character
is the one that makes the sum over all 15 positions zero in both groups. This detects single
errors, adjacent and jump transpositions, twin and jump-twin errors. Pure module.
"""

from __future__ import annotations

import re

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_SHAPE = re.compile(r"^([A-Z]{2})(-?)([A-Z0-9]{3})\2([A-Z0-9]{9})(?:\2([A-Z0-9]))?$")

_Matrix = tuple[tuple[int, int], tuple[int, int]]
_P1: _Matrix = ((0, 1), (1, 1))
_P2: _Matrix = ((0, 1), (1, 2))


class EmaidError(ValueError):
    """An eMAID that does not have the ISO 15118-2 shape or has a wrong check digit."""


def _mul(a: _Matrix, b: _Matrix, mod: int) -> _Matrix:
    return (
        (
            (a[0][0] * b[0][0] + a[0][1] * b[1][0]) % mod,
            (a[0][0] * b[0][1] + a[0][1] * b[1][1]) % mod,
        ),
        (
            (a[1][0] * b[0][0] + a[1][1] * b[1][0]) % mod,
            (a[1][0] * b[0][1] + a[1][1] * b[1][1]) % mod,
        ),
    )


def _powers(p: _Matrix, mod: int, count: int) -> tuple[_Matrix, ...]:
    out = [p]
    while len(out) < count:
        out.append(_mul(out[-1], p, mod))
    return tuple(out)


_P1_POWERS = _powers(_P1, 2, 15)
_P2_POWERS = _powers(_P2, 3, 15)


def _contribution(ch: str, position: int) -> tuple[int, int, int, int]:
    """(q1, q2) * P1^position over Z2 and (r1, r2) * P2^position over Z3."""
    value = _VALUE[ch]
    q, r = divmod(value, 9)
    q1, q2 = divmod(q, 2)
    r1, r2 = divmod(r, 3)
    m1 = _P1_POWERS[position - 1]
    m2 = _P2_POWERS[position - 1]
    return (
        (q1 * m1[0][0] + q2 * m1[1][0]) % 2,
        (q1 * m1[0][1] + q2 * m1[1][1]) % 2,
        (r1 * m2[0][0] + r2 * m2[1][0]) % 3,
        (r1 * m2[0][1] + r2 * m2[1][1]) % 3,
    )


def _sum(chars: str) -> tuple[int, int, int, int]:
    total = [0, 0, 0, 0]
    for i, ch in enumerate(chars, start=1):
        for k, v in enumerate(_contribution(ch, i)):
            total[k] += v
    return (total[0] % 2, total[1] % 2, total[2] % 3, total[3] % 3)


def check_digit(emaid14: str) -> str:
    """The check character for the first 14 characters of a normalized eMAID."""
    chars = emaid14.upper()
    if len(chars) != 14 or any(ch not in _VALUE for ch in chars):
        raise EmaidError(f"need 14 characters 0-9/A-Z before the check digit, got {emaid14!r}")
    base = _sum(chars)
    for candidate in ALPHABET:
        extra = _contribution(candidate, 15)
        if (
            (base[0] + extra[0]) % 2 == 0
            and (base[1] + extra[1]) % 2 == 0
            and (base[2] + extra[2]) % 3 == 0
            and (base[3] + extra[3]) % 3 == 0
        ):
            return candidate
    raise AssertionError("no check character: the matrices are not invertible")  # pragma: no cover


def normalize(emaid: str) -> str:
    """Upper case, separators removed; raises :class:`EmaidError` on a wrong shape."""
    text = emaid.strip().upper()
    match = _SHAPE.match(text)
    if match is None:
        raise EmaidError(f"not an eMAID (CC-PPP-IIIIIIIII[-D], letters and digits only): {emaid!r}")
    country, _sep, provider, instance, digit = match.groups()
    return f"{country}{provider}{instance}{digit or ''}"


def is_valid(emaid: str, *, require_check_digit: bool = False) -> bool:
    """True when ``emaid`` has the eMAID shape and, if it carries one, a correct check digit."""
    try:
        norm = normalize(emaid)
    except EmaidError:
        return False
    if len(norm) == 14:
        return not require_check_digit
    return check_digit(norm[:14]) == norm[14]


def make_emaid(country: str, provider: str, instance: str) -> str:
    """A normalized 15-character eMAID with its check digit."""
    norm = normalize(f"{country}{provider}{instance}")
    return norm + check_digit(norm)


def format_emaid(emaid: str) -> str:
    """The readable form with separators: ``DE-8AA-CA2B3C4D5-L``."""
    norm = normalize(emaid)
    parts = [norm[:2], norm[2:5], norm[5:14]]
    if len(norm) == 15:
        parts.append(norm[14])
    return "-".join(parts)
