"""The station runs without lxml; the commands that need it say which extra to install.

lxml is an extra (``secc[xml]``): only the XML view of ``secc exi`` and the codec generator
use it.  Here lxml is made unimportable in a fresh interpreter (``sys.modules["lxml"] =
None``) and the station's commands still import and ``secc demo`` still charges end to
end.  ``.ci/min-deps.sh`` runs this file again in a venv where lxml is not installed at
all, with the declared minimum versions of the runtime dependencies.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NO_LXML = "import sys; sys.modules['lxml'] = None\n"

# everything a station, its installer and its maintenance job import
STATION_MODULES = (
    "secc.cli.run",
    "secc.cli.demo",
    "secc.cli.commission",
    "secc.cli.renew",
    "secc.cli.replay",
    "secc.cli.ev",
    "secc.runtime",
    "secc.maintenance",
    "secc.ocpp_bridge",
    "hal.cli",
    "certs.cli",
)


def _python(code: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", NO_LXML + code],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        check=False,
    )


def test_lxml_is_an_extra_not_a_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [d.split(">")[0].split("=")[0].strip() for d in project["dependencies"]]
    assert "lxml" not in names
    extras = project["optional-dependencies"]
    assert any(d.startswith("lxml") for d in extras["xml"])
    assert any(d.startswith("lxml") for d in extras["test"])


def test_every_runtime_dependency_has_a_lower_bound() -> None:
    """.ci/min-deps.sh installs exactly these bounds: each must be a plain ``>=X``."""
    for dep in tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]:
        assert dep.count(">=") == 1 and "," not in dep and "<" not in dep, dep


def test_the_station_imports_without_lxml() -> None:
    code = (
        "import importlib\n"
        f"for m in {STATION_MODULES!r}:\n"
        "    importlib.import_module(m)\n"
        "print(sorted(k for k, v in sys.modules.items() if k.startswith('lxml') and v))\n"
    )
    done = _python(code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_demo_charges_without_lxml(tmp_path: Path) -> None:
    code = (
        "from secc.cli.main import main\n"
        f"sys.exit(main(['demo', '--dir', {str(tmp_path / 'demo')!r}]))\n"
    )
    done = _python(code, timeout=300.0)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "all 4 sessions charged and ended normally" in done.stdout


def test_exi_without_lxml_names_the_extra() -> None:
    code = (
        "from secc.cli.main import main\nsys.exit(main(['exi', 'decode', '--schema', 'din', '00']))"
    )
    done = _python(code)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "lxml" in lines[0] and "secc[xml]" in lines[0]


def test_the_xml_view_without_lxml_names_the_extra() -> None:
    done = _python("import secc.codec.xml\n")
    assert done.returncode != 0
    assert "pip install 'secc[xml]'" in done.stderr
