"""The documentation matches the code: docs/config.md has every key of the station file
(with the defaults of the timer and limit tables), the loader's hints name only keys a
file may have, and ``--help`` is plain text (no reStructuredText from docstrings)."""

from __future__ import annotations

import dataclasses
import re
import tomllib
import typing
from pathlib import Path

import pytest

from secc.cli.main import _COMMANDS, main
from secc.config import StationConfig, parse
from secc.core.config import AcLimits, DcLimits, Timers
from secc.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]
CONFIG_MD = re.sub(r"\s+", " ", (ROOT / "docs" / "config.md").read_text())


def _keys(cls: type, prefix: str = "") -> list[str]:
    """Every key a station file may hold (dotted), from the dataclasses the loader fills."""
    out: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.metadata.get("internal"):
            continue
        tp = hints[f.name]
        inner = [tp, *typing.get_args(tp)]
        nested = next((t for t in inner if dataclasses.is_dataclass(t)), None)
        if nested is not None:
            out += _keys(nested, f"{prefix}{f.name}.")  # type: ignore[arg-type]
        else:
            out.append(prefix + f.name)
    return out


def test_config_md_documents_every_key() -> None:
    keys = _keys(StationConfig)
    assert "evse.timers.stop_grace" in keys and "evse.hal.backend" in keys
    missing = [k for k in keys if f"`{k.rsplit('.', 1)[-1]}`" not in CONFIG_MD]
    assert not missing, f"docs/config.md lacks {missing}"


def _number(value: float) -> str:
    return f"{value:g}" if value < 1e5 else str(int(value))


@pytest.mark.parametrize("cls", [Timers, AcLimits, DcLimits])
def test_config_md_gives_the_defaults_of_the_tables(cls: type) -> None:
    for f in dataclasses.fields(cls):
        text = f"`{f.name}` ({_number(f.default)}"  # type: ignore[arg-type]
        assert text in CONFIG_MD, f"docs/config.md: {text}...)"


def test_hints_name_only_keys_a_file_may_have() -> None:
    text = '[[evse]]\nevse_id = "DE*ABC*E1234567*1"\nmax_curent = 3\n'
    with pytest.raises(ConfigError) as info:
        parse(tomllib.loads(text), "secc.toml")
    message = str(info.value)
    assert "unknown key evse[0].max_curent" in message and "timers" in message
    assert "hal_options" not in message and "hal_plc_options" not in message


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    try:
        code = main([*argv, "--help"])
    except SystemExit as done:  # argparse's --help
        code = done.code  # type: ignore[assignment]
    assert code in (0, None), argv
    return capsys.readouterr().out


def _subcommands(text: str) -> list[str]:
    """The sub-commands an argparse help lists (indented names under the positionals)."""
    part = text.split("positional arguments:", 1)[-1].split("options:", 1)[0]
    return re.findall(r"^    (\w[\w-]*)(?:\s{2,}|\n)", part, flags=re.MULTILINE)


def test_help_is_plain_text(capsys: pytest.CaptureFixture[str]) -> None:
    commands = [[name] for name in _COMMANDS]
    seen = 0
    while commands:
        argv = commands.pop()
        text = _help(argv, capsys)
        seen += 1
        assert "``" not in text, f"secc {' '.join(argv)} --help: {text}"
        assert not re.search(r"::(\s|$)", text), f"secc {' '.join(argv)} --help: {text}"
        if len(argv) == 1:
            commands += [[*argv, sub] for sub in _subcommands(text)]
    assert seen > len(_COMMANDS)  # the nested commands (certs, hal, exi) were visited
    top = main(["--help"])
    assert top == 0
