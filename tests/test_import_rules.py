"""The dependency rules of the architecture (README "Architecture"), checked on the AST.

1. Pure modules (codec, v2gtp, sdp, core, and the HAL protocol/framing/mme/matcher/control
   modules) use no asyncio, socket, ssl, time, threading, select, subprocess or os.environ.
2. The core may import pure ``certs`` modules and ``hal.types``; never ``certs.store`` nor a
   HAL backend.
3. ``hal`` and ``certs`` never import ``secc``.
4. The core never imports the OCPP bridge nor the ``ocpp`` package.
5. Nothing outside ``secc.cli`` imports ``secc.cli``.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

# every file is parsed once, when the first of these tests runs (not at collection, which
# each xdist worker does); the tests share one worker (tests/conftest.py GROUPS)

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("secc", "hal", "certs")
IMPURE = {"asyncio", "socket", "ssl", "time", "threading", "select", "subprocess", "selectors"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imports(name: str, path: Path, tree: ast.Module | None = None) -> set[str]:
    tree = tree or _parse(path)
    out: set[str] = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{alias.name}" for alias in node.names)
    return out


def _uses_environ(path: Path, tree: ast.Module | None = None) -> bool:
    tree = tree or _parse(path)
    return any(
        isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv"}
        for node in ast.walk(tree)
    )


def _is_pure(name: str) -> bool:
    if name.startswith("secc.codec.codegen"):
        return False  # build-time tool: reads files, runs pip
    if name.startswith(("secc.codec", "secc.core")) or name in {"secc.v2gtp", "secc.sdp"}:
        return True
    leaf = name.rpartition(".")[2]
    return name.startswith("hal.") and leaf in {"protocol", "framing", "mme", "matcher", "control"}


def _hits(imports: set[str], prefixes: set[str]) -> set[str]:
    return {imp for imp in imports for p in prefixes if imp == p or imp.startswith(p + ".")}


MODULES = _modules()


@functools.cache
def _facts() -> dict[str, tuple[set[str], bool]]:
    """Per project module: what it imports, and whether it reads os.environ/getenv."""
    facts = {}
    for name, path in MODULES.items():
        tree = _parse(path)
        facts[name] = (_imports(name, path, tree), _uses_environ(path, tree))
    return facts


def _all_imports() -> dict[str, set[str]]:
    return {name: imports for name, (imports, _environ) in _facts().items()}


def test_there_is_something_to_check() -> None:
    assert "secc.cli.main" in MODULES
    assert any(name.startswith("secc.codec") for name in MODULES)


def test_pure_modules_do_no_io() -> None:
    bad = {}
    for name, (imports, environ) in _facts().items():
        if _is_pure(name):
            hits = _hits(imports, IMPURE)
            if hits or environ:
                bad[name] = sorted(hits) or ["os.environ"]
    assert not bad, f"pure modules doing I/O: {bad}"


def test_core_imports_only_pure_certs_and_hal_types() -> None:
    bad = {}
    for name, imports in _all_imports().items():
        if name.startswith("secc.core"):
            hits = _hits(imports, {"certs.store", "certs.cli", "hal.backends", "hal.registry"})
            if hits:
                bad[name] = sorted(hits)
    assert not bad, bad


def test_hal_and_certs_never_import_secc() -> None:
    bad = {
        name: sorted(_hits(imports, {"secc"}))
        for name, imports in _all_imports().items()
        if name.startswith(("hal", "certs")) and _hits(imports, {"secc"})
    }
    assert not bad, bad


def test_core_never_imports_ocpp() -> None:
    bad = {
        name: sorted(_hits(imports, {"ocpp", "secc.ocpp_bridge"}))
        for name, imports in _all_imports().items()
        if name.startswith("secc.core") and _hits(imports, {"ocpp", "secc.ocpp_bridge"})
    }
    assert not bad, bad


def test_nothing_imports_the_cli() -> None:
    bad = {
        name: sorted(_hits(imports, {"secc.cli"}))
        for name, imports in _all_imports().items()
        if not name.startswith("secc.cli") and _hits(imports, {"secc.cli"})
    }
    assert not bad, bad


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    # the checker itself must be able to fail: a synthetic module importing asyncio
    fake = tmp_path / "mod.py"
    fake.write_text("import asyncio\nfrom os import environ\nx = environ\n")
    assert _hits(_imports("secc.core.fake", fake), IMPURE) == {"asyncio"}
    fake.write_text("import os\nx = os.environ\n")
    assert _uses_environ(fake)
