"""eMAID check digit against published examples, shape rules and error detection."""

from __future__ import annotations

import itertools

import pytest

from certs.emaid import (
    ALPHABET,
    EmaidError,
    check_digit,
    format_emaid,
    is_valid,
    make_emaid,
    normalize,
)

# Published examples: eMI3 / DIN SPEC 91286 "Check Digit Calculation for Contract-IDs"
# (DE83DUIEN83QGZ -> D), the eMI3 business objects example DE-8AA-CA2B3C4D5-L, and the
# contract IDs used as examples alongside the algorithm (e.g. FR-XYZ-123456789-2).
PUBLISHED = [
    ("NN123ABCDEFGHI", "T"),
    ("FRXYZ123456789", "2"),
    ("ITA1B2C3E4F5G6", "4"),
    ("ESZU8WOX834H1D", "R"),
    ("PT73902837ABCZ", "Z"),
    ("DE83DUIEN83QGZ", "D"),
    ("DE83DUIEN83ZGQ", "M"),
    ("DE8AA001234567", "0"),
    ("DE8AACA2B3C4D5", "L"),
]


@pytest.mark.parametrize(("body", "digit"), PUBLISHED)
def test_published_check_digits(body: str, digit: str) -> None:
    assert check_digit(body) == digit
    assert check_digit(body.lower()) == digit
    assert is_valid(body + digit, require_check_digit=True)


def test_separated_form_and_formatting() -> None:
    assert is_valid("DE-8AA-CA2B3C4D5-L")
    assert normalize("de-8aa-ca2b3c4d5-l") == "DE8AACA2B3C4D5L"
    assert format_emaid("DE8AACA2B3C4D5L") == "DE-8AA-CA2B3C4D5-L"
    assert make_emaid("DE", "8AA", "CA2B3C4D5") == "DE8AACA2B3C4D5L"
    assert is_valid("DE8AACA2B3C4D5")  # check digit is optional
    assert not is_valid("DE8AACA2B3C4D5", require_check_digit=True)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "D",
        "DE-8AA-CA2B3C4D5-LX",
        "DE8AA-CA2B3C4D5L",
        "1E8AACA2B3C4D5L",
        "DE8AACA2B3C4D5*",
        "DE*8AA",
    ],
)
def test_wrong_shapes(bad: str) -> None:
    assert not is_valid(bad)
    with pytest.raises(EmaidError):
        normalize(bad)


@pytest.mark.parametrize("bad", ["", "DE8AACA2B3C4D", "DE8AACA2B3C4D5L", "DE8AACA2B3C4D*"])
def test_check_digit_input(bad: str) -> None:
    with pytest.raises(EmaidError):
        check_digit(bad)


def test_every_single_error_and_adjacent_swap_is_detected() -> None:
    emaid = "DE8AACA2B3C4D5L"
    for pos, ch in itertools.product(range(15), ALPHABET):
        if ch != emaid[pos]:
            assert not is_valid(emaid[:pos] + ch + emaid[pos + 1 :]), (pos, ch)
    for pos in range(14):
        swapped = emaid[:pos] + emaid[pos + 1] + emaid[pos] + emaid[pos + 2 :]
        if swapped != emaid:
            assert not is_valid(swapped), pos
