"""Entry point of the ``secc`` console script.

Each subcommand lives in its own module and is imported only when it runs, so that
``secc certs ...`` does not pay for the codec and ``secc exi ...`` does not pay for the
HAL.  ``certs`` and ``hal`` bring their own command-line modules (``certs.cli``,
``hal.cli``) because those packages never import :mod:`secc`.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

# name -> (module, help).  The module exposes ``main(argv: list[str], prog: str) -> int``.
_COMMANDS: dict[str, tuple[str, str]] = {
    "run": ("secc.cli.run", "run the station (SDP, V2G over TCP/TLS, HAL, OCPP) from a config"),
    "demo": ("secc.cli.demo", "a simulated station and EV charging end to end on this machine"),
    "ev": ("secc.cli.ev", "the EV simulator, against a station on the network"),
    "commission": ("secc.cli.commission", "check and provision a station for Plug & Charge"),
    "renew": ("secc.cli.renew", "certificate maintenance: renew, refresh OCSP, warn on expiry"),
    "replay": ("secc.cli.replay", "feed a session trace back through the core, report differences"),
    "exi": ("secc.cli.exi", "decode and encode ISO 15118-20 / -2 / DIN / appHandshake EXI"),
    "selfcheck": ("secc.cli.selfcheck", "run the codec over the public test vectors"),
    "certs": ("certs.cli", "certificate toolkit: test PKI, store, verify, CSR, expiry"),
    "hal": ("hal.cli", "hardware abstraction layer tools: backends, MCU simulator"),
}

# optional dependencies a subcommand may need -> the extra that installs them
_EXTRAS = {"lxml": "xml"}


def _parser() -> argparse.ArgumentParser:
    import argparse  # (here: `secc run` starts without it)

    parser = argparse.ArgumentParser(
        prog="secc",
        description="ISO 15118-20 / -2 / DIN SPEC 70121 SECC stack for Linux charge controllers",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_module, help_text) in _COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help"}:
        _parser().print_help()
        return 0 if args else 2
    if args[0] == "--version":
        from secc import __version__

        print(f"secc {__version__}")
        return 0
    name, rest = args[0], args[1:]
    if name not in _COMMANDS:  # (the parser only here: building it costs `secc run` ms)
        _parser().print_usage(sys.stderr)
        print(f"secc: error: unknown command {name!r}", file=sys.stderr)
        return 2
    if name == "run":
        # the station's imports make no garbage: no collection until it is ready (its
        # worker thread turns the collector back on, secc.cli.run._settle; issue 17)
        gc.disable()
    try:
        module = importlib.import_module(_COMMANDS[name][0])
    except ModuleNotFoundError as exc:
        if exc.name not in _EXTRAS:
            raise
        print(
            f"secc {name}: needs {exc.name}, which is not installed: "
            f"pip install 'secc[{_EXTRAS[exc.name]}]'",
            file=sys.stderr,
        )
        return 2
    result: int = module.main(rest, prog=f"secc {name}")
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
