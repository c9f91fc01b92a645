"""``python -m secc.codec.codegen``: regenerate (or check) ``secc/codec/_generated``.

The XSDs come from ``--schemas DIR``, else ``../shared/schemas`` beside the checkout,
else the ``iso15118`` wheel on PyPI (``pip download --no-deps``), which ships the same
files under ``iso15118/shared/schemas``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from .emit import Emitter
from .xsd import load

PACKAGE_DIR = Path(__file__).resolve().parent.parent
REPO = PACKAGE_DIR.parent.parent
SHARED_SCHEMAS = REPO.parent / "shared" / "schemas"
WHEEL = "iso15118==0.31.2"

# module name -> root XSD (relative to the schema folder)
SETS = {
    "xmldsig": "xmldsig-core-schema.xsd",
    "apphand": "V2G_CI_AppProtocol.xsd",
    "iso2": "iso15118_2/V2G_CI_MsgDef.xsd",
    "din": "din_spec/V2G_CI_MsgDef.xsd",
    "iso20_common": "iso15118_20/V2G_CI_CommonMessages.xsd",
    "iso20_ac": "iso15118_20/V2G_CI_AC.xsd",
    "iso20_dc": "iso15118_20/V2G_CI_DC.xsd",
    "iso20_wpt": "iso15118_20/V2G_CI_WPT.xsd",
    "iso20_acdp": "iso15118_20/V2G_CI_ACDP.xsd",
}


def fetch_schemas(dest: Path) -> Path:
    """Download the iso15118 wheel and extract its XSDs into ``dest``."""
    print(f"codegen: fetching the XSDs from the {WHEEL} wheel", file=sys.stderr)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(dest), WHEEL],
        check=True,
    )
    wheel = next(dest.glob("iso15118-*.whl"))
    prefix = "iso15118/shared/schemas/"
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith(prefix) and name.endswith(".xsd"):
                target = dest / "schemas" / name[len(prefix) :]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))
    return dest / "schemas"


def generate(schemas: Path) -> dict[str, str]:
    """Module name -> generated source."""
    out: dict[str, str] = {}
    shared: Emitter | None = None
    for module, rel in SETS.items():
        root = schemas / rel
        schema = load(root)
        sources = sorted(set(_schema_files(root)))
        em = Emitter(
            schema, module, shared=shared if module != "xmldsig" else None, sources=sources
        )
        out[module] = em.emit()
        if module == "xmldsig":
            shared = em
    return out


def _schema_files(root: Path) -> list[Path]:
    from .xsd import Loader

    return sorted(Loader(root)._seen)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m secc.codec.codegen")
    parser.add_argument("--schemas", type=Path, help="folder with the XSDs")
    parser.add_argument("--out", type=Path, default=PACKAGE_DIR / "_generated")
    parser.add_argument("--check", action="store_true", help="diff instead of writing")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        schemas = args.schemas
        if schemas is None:
            schemas = SHARED_SCHEMAS if SHARED_SCHEMAS.is_dir() else fetch_schemas(Path(tmp))
        sources = generate(schemas)
    args.out.mkdir(parents=True, exist_ok=True)
    stale = []
    for module, text in sources.items():
        target = args.out / f"{module}.py"
        if args.check:
            if not target.exists() or target.read_text(encoding="utf-8") != text:
                stale.append(target.name)
        else:
            target.write_text(text, encoding="utf-8")
    init = args.out / "__init__.py"
    if not args.check:
        init.write_text('"""Generated EXI codec modules. Do not edit: see secc.codec.codegen."""\n')
    if stale:
        print(f"codegen: out of date: {', '.join(stale)}", file=sys.stderr)
        return 1
    print(
        f"codegen: {'up to date' if args.check else 'wrote'} {len(sources)} modules in {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
