"""``secc.configload.read_plain_toml``: the station's plain TOML read without tomllib
(issue 17) must give exactly what ``tomllib.loads`` gives (the same values of the same
types, tables and arrays in the same order), or None, never anything else: checked on
every TOML file of the project, on the configurations the tests and benches write, and
on thousands of mutations of them (lines deleted, duplicated, swapped, characters
dropped, and fragments of every TOML feature the plain reader leaves to tomllib)."""

from __future__ import annotations

import random
import tomllib
from pathlib import Path
from typing import Any

import pytest

from secc.config import load_file
from secc.configload import read_plain_toml
from secc.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent

# a station file as bench/footprint.py and the station tests write them
STATION = """
[station]
trace_dir = "/tmp/x/traces"
log_level = "warning"
[certs]
store = "/tmp/x/station"
[[evse]]
evse_id = "DE*ABC*E1234567*1"
address = "::1"
tls_port = 0
tcp_port = -1
sdp_port = 15118
energy_modes = ["AC_three_phase_core", "DC_extended"]
protocols = [ "iso20-dc", "iso2" , ]
[evse.hal]
backend = "simulated"
control = "none"
[evse.hal.options]
ev_state = "C"
[evse.dc]
max_voltage = 920.0
min_voltage = -0.5
[[evse]]
evse_id = "DE*ABC*E1234567*2"  # a comment with "quotes" and = and [brackets]
address = "fe80::1"
energy_modes = []
[evse.hal]
backend = "serial-mcu"
"""

# what the plain reader leaves to tomllib (valid TOML or not)
FRAGMENTS = [
    "a = 1e3",
    "a = 1E-2",
    "a = 1_000",
    "a = 0x1F",
    "a = 0o17",
    "a = 0b11",
    "a = +1",
    "a = 01",
    "a = -01",
    "a = 1.",
    "a = .5",
    "a = 1.5.2",
    "a = inf",
    "a = -nan",
    "a = 1979-05-27",
    "a = 1979-05-27T07:32:00Z",
    "a = 07:32:00",
    "a = 'literal'",
    'a = """multi"""',
    "a = '''multi'''",
    'a = "tab\\tescape"',
    'a = "quote\\"inside"',
    'a = "unterminated',
    "a = { x = 1 }",
    "a.b = 1",
    '"a" = 1',
    "'a' = 1",
    "a b = 1",
    "a = [1,\n2]",
    "a = [[1], [2]]",
    "a = [1 2]",
    "a = [,]",
    "a = [1 # c 2]",
    "a = [1 #c ]",
    'a = ["a"#]',
    "a = [1, 2 # c",
    "a = ",
    "= 1",
    "a = true1",
    "a = True",
    "a = 1 2",
    'a = "x" "y"',
    "[ a ]",
    "[a . b]",
    "[a.]",
    "[]",
    "[[]]",
    "[a]]",
    "[[a]",
    "[[a]]]",
    "[a] x",
    '["a"]',
    "[a]\n[a]",
    "[a.b]\n[a]",
    "[a]\nb = 1\n[a.b]",
    "[[a]]\n[a]",
    "[a]\n[[a]]",
    "a = 1\n[a]",
    "a = [1]\n[[a]]",
    "a = [1]\n[a.b]",
    "a = 1\na = 2",
    "a\t= 1",
    "a = 1\r",
    "a = \x7f",
    "# comment \x01",
    'a = "\u00a0"',
    "\ufeffa = 1",
    "a = -",
    "a = -0",
    "a = -0.0",
    "a = 0.000",
    "a = 123456789012345678901234567890",
    'a = ["a", 1, true, 2.5]',
    "a = []",
    "a=1#c",
    "  [  a]",
    'a = "é€😀"',
]


def _typed(value: Any) -> Any:
    """``value`` with its types spelled out (1 == 1.0 == True in Python)."""
    if isinstance(value, dict):
        return ("dict", [(k, _typed(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [_typed(v) for v in value])
    return (type(value).__name__, repr(value))


def _same_as_tomllib(text: str) -> bool:
    """The plain reader gives None, or exactly tomllib's result (never for invalid
    TOML); True when it read the text."""
    plain = read_plain_toml(text)
    try:
        expected = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        assert plain is None, text
        return False
    if plain is None:
        return False
    assert _typed(plain) == _typed(expected), text
    return True


def _corpus() -> list[str]:
    files = [
        *(ROOT / "docs").rglob("*.toml"),
        *(ROOT / "tests").rglob("*.toml"),
        *(ROOT / "systemd").rglob("*.toml"),
    ]
    texts = [p.read_text(encoding="utf-8") for p in files]
    import sys

    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import footprint

        texts.append(
            footprint.CONFIG.format(dir="/tmp/x", evse_id="DE*ABC*E1*1", sdp_port=15118, ocpp="")
        )
        texts.append(
            footprint.CONFIG.format(
                dir="/tmp/x",
                evse_id="DE*ABC*E1*1",
                sdp_port=15118,
                ocpp=footprint.OCPP.format(port=9000, dir="/tmp/x"),
            )
        )
    finally:
        sys.path.remove(str(ROOT / "bench"))
    return [*texts, STATION]


CORPUS = _corpus()


def test_the_project_files_are_read_plainly_and_equal() -> None:
    assert (ROOT / "docs" / "secc.example.toml").exists()
    for text in CORPUS:
        assert _same_as_tomllib(text), text[:200]


@pytest.mark.parametrize("fragment", FRAGMENTS)
def test_every_fragment_is_tomllib_s_or_left_to_it(fragment: str) -> None:
    for text in (fragment, STATION + fragment + "\n", fragment + "\n" + STATION):
        _same_as_tomllib(text)


def test_what_the_plain_reader_reads() -> None:
    assert read_plain_toml("a = -0") == {"a": 0}
    assert read_plain_toml('a = ["a", 1, true, 2.5]') == {"a": ["a", 1, True, 2.5]}
    assert read_plain_toml("[[a]]\nx = 1\n[a.b]\n[[a]]\n[a.b]\ny = 2") == {
        "a": [{"x": 1, "b": {}}, {"b": {"y": 2}}]
    }
    for left in ("a = 1e3", "a = 'x'", "a.b = 1", "[a.b]\n[a]", "a = [1,\n2]"):
        assert read_plain_toml(left) is None, left


def test_mutations_are_tomllib_s_or_left_to_it() -> None:
    rng = random.Random(17)
    read = 0
    for n in range(4000):
        lines = rng.choice(CORPUS).split("\n")
        kind = n % 6
        i = rng.randrange(len(lines))
        if kind == 0:
            del lines[i]
        elif kind == 1:
            lines.insert(i, lines[rng.randrange(len(lines))])
        elif kind == 2:
            j = rng.randrange(len(lines))
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == 3 and lines[i]:
            k = rng.randrange(len(lines[i]))
            lines[i] = lines[i][:k] + lines[i][k + 1 :]
        elif kind == 4:
            lines.insert(i, rng.choice(FRAGMENTS))
        elif lines[i]:
            k = rng.randrange(len(lines[i]) + 1)
            lines[i] = lines[i][:k] + rng.choice("[]=\"',.#-0 ") + lines[i][k:]
        read += _same_as_tomllib("\n".join(lines))
    assert read > 500  # (most mutations still read plainly: the comparison is real)


def test_load_file_reads_tomllib_s_toml_and_its_errors(tmp_path: Path) -> None:
    """A file the plain reader leaves to tomllib loads as before; invalid TOML is
    tomllib's error line."""
    path = tmp_path / "secc.toml"
    example = (ROOT / "docs" / "secc.example.toml").read_text(encoding="utf-8")
    changed = example.replace("max_voltage = 920.0", "max_voltage = 9.2e2")
    assert changed != example and read_plain_toml(changed) is None
    path.write_text(changed)
    by_tomllib = load_file(path)
    path.write_text(example)
    assert load_file(path) == by_tomllib
    path.write_text("[station]\nlog_level = 'warning\n")
    with pytest.raises(
        ConfigError, match=r"secc.toml: not valid TOML: Expected .* \(at end of document\)"
    ):
        load_file(path)
    path.write_bytes(b'[station]\nname = "\xff"\n')
    with pytest.raises(ConfigError, match="not valid TOML: 'utf-8' codec"):
        load_file(path)
