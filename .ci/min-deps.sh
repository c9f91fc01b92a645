#!/usr/bin/env bash
# Proves the declared lower bounds: a second venv, .venv-min, with exactly the minimum
# versions pyproject.toml declares for the runtime dependencies (">=X" installed as "==X")
# and without the extras (no lxml: a charge controller installs without it), then the
# simulated station charging end to end (`secc demo`) and the OCPP tests there.
# Run from anywhere; PYTHON picks the interpreter (default python3). About a minute.
# `--prepare` only builds .venv-min and checks it, `--run` only runs the demo and the
# tests in it (.ci/run builds it while it installs the main venv); no argument: both.
set -euo pipefail
cd "$(dirname "$0")/.."
py=${PYTHON:-python3}
phase=${1:-all}
case "$phase" in
    all | --prepare | --run) ;;
    *)
        echo "usage: $0 [--prepare | --run]" >&2
        exit 2
        ;;
esac

if [ "$phase" != "--run" ]; then

    pins=$("$py" - <<'PY'
import re
import tomllib

with open("pyproject.toml", "rb") as f:
    deps = tomllib.load(f)["project"]["dependencies"]
pins = []
for dep in deps:
    m = re.fullmatch(r"([A-Za-z0-9_.\-]+)>=([0-9][0-9A-Za-z.]*)", dep.replace(" ", ""))
    if m is None:
        raise SystemExit(f"min-deps: {dep!r} has no plain lower bound to install")
    pins.append(f"{m[1]}=={m[2]}")
print(" ".join(pins))
PY
    )
    echo "min-deps: $pins"

    rm -rf .venv-min
    "$py" -m venv .venv-min
    pip=(.venv-min/bin/pip install -q --disable-pip-version-check)
    # shellcheck disable=SC2086 # one word per pin
    "${pip[@]}" $pins pytest pytest-xdist hypothesis
    "${pip[@]}" --no-deps -e .
    .venv-min/bin/pip check --disable-pip-version-check
    .venv-min/bin/python - <<'PY'
import importlib.metadata as md
import importlib.util
import sys

for name in ("cryptography", "asn1crypto", "ocpp", "websockets"):
    print(f"min-deps: {name} {md.version(name)}")
if importlib.util.find_spec("lxml") is not None:
    sys.exit("min-deps: lxml is installed, but the station must work without it")
PY
    .venv-min/bin/python -m compileall -q secc hal certs >/dev/null
fi
[ "$phase" = "--prepare" ] && exit 0
[ -x .venv-min/bin/secc ] || { echo "min-deps: no .venv-min (run --prepare first)" >&2; exit 1; }

echo "min-deps: secc demo"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd "$work" && "$OLDPWD/.venv-min/bin/secc" demo --dir "$work/demo" >"$work/demo.log" 2>&1) || {
    cat "$work/demo.log"
    echo "min-deps: secc demo failed with the minimum versions" >&2
    exit 1
}
tail -n 1 "$work/demo.log"

echo "min-deps: OCPP tests"
.venv-min/bin/python -m pytest -q -p no:cacheprovider tests/ocpp tests/test_dependencies.py
