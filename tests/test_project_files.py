"""The files a user looks for first: the license pyproject declares, a changelog that
knows the current version, a security policy that says how to report and what is
supported."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_the_license_file_is_the_declared_license() -> None:
    assert PROJECT["license"] == {"text": "Apache-2.0"}
    text = (ROOT / "LICENSE").read_text()
    assert "Apache License" in text and "Version 2.0, January 2004" in text
    assert "TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION" in text
    assert "END OF TERMS AND CONDITIONS" in text


def test_the_changelog_knows_the_current_version() -> None:
    text = (ROOT / "CHANGELOG.md").read_text()
    headings = re.findall(r"^## \[([^\]]+)\]", text, flags=re.MULTILINE)
    assert headings and headings[0] == "Unreleased"
    assert PROJECT["version"] in headings


def test_the_security_policy_says_how_to_report_and_what_is_supported() -> None:
    text = (ROOT / "SECURITY.md").read_text()
    assert "## Reporting a vulnerability" in text and "Do not open a public issue" in text
    assert "## Supported versions" in text
    series = ".".join(PROJECT["version"].split(".")[:2]) + ".x"
    assert series in text
