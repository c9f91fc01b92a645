#!/usr/bin/env bash
# Installs what the interop tests (tests/interop/) need, idempotently:
#   - Debian packages: openjdk-17-jre-headless (the peer's EXI codec is a Java jar),
#     iproute2 (network namespaces, veth pairs), openssl;
#   - .venv-josev/ in the repository root: the independent EV, the `iso15118` package
#     ("Josev") at a pinned version, in its own venv because it pins old pydantic and
#     cryptography; its wheel does not declare `aiofile`, so that is installed beside it.
# Needs only Debian mirrors and PyPI.  Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

JOSEV_VERSION="0.31.2"
VENV=".venv-josev"
PYTHON="${PYTHON:-python3}"

say() { echo "interop-setup: $*"; }

# --- Debian packages ----------------------------------------------------------------
need=()
java_ok() {
    command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])'
}
java_ok || need+=(openjdk-17-jre-headless)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
# Debian's python3 creates venvs only with python3-venv (ensurepip) installed
if [ ! -x "$VENV/bin/python" ] && ! "$PYTHON" -c 'import ensurepip' >/dev/null 2>&1; then
    need+=(python3-venv)
fi
if [ ${#need[@]} -gt 0 ]; then
    if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
        say "missing ${need[*]} and cannot install them (needs root and apt-get)" >&2
        exit 1
    fi
    apt-get update -qq
    # Debian 12 has openjdk-17; releases without it get their default JRE (>= 17 too)
    for i in "${!need[@]}"; do
        if [ "${need[$i]}" = openjdk-17-jre-headless ] \
            && ! apt-cache show openjdk-17-jre-headless >/dev/null 2>&1; then
            need[$i]=default-jre-headless
        fi
    done
    say "apt-get install ${need[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}"
else
    say "java, ip, openssl and venv support already present"
fi
java -version 2>&1 | head -n 1 | sed 's/^/interop-setup: /'

# --- the peer's venv ----------------------------------------------------------------
have_version() {
    [ -x "$VENV/bin/python" ] && "$VENV/bin/python" - "$JOSEV_VERSION" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
import aiofile  # noqa: F401  (undeclared by the iso15118 wheel, imported by its EVCC)
sys.exit(0 if version("iso15118") == sys.argv[1] else 1)
PY
}
if have_version; then
    say "$VENV already holds iso15118==$JOSEV_VERSION and aiofile"
else
    if [ ! -x "$VENV/bin/python" ]; then
        say "creating $VENV with $($PYTHON --version 2>&1)"
        "$PYTHON" -m venv "$VENV"
    fi
    say "pip install iso15118==$JOSEV_VERSION aiofile into $VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "iso15118==$JOSEV_VERSION" aiofile
    have_version || { say "iso15118==$JOSEV_VERSION did not install into $VENV" >&2; exit 1; }
fi
"$VENV/bin/python" -c 'import iso15118.evcc.main, iso15118.secc.main' \
    || { say "the iso15118 package in $VENV does not import" >&2; exit 1; }
say "ready: $VENV/bin/python -m iso15118.evcc.main (EV), java for its EXI codec"
