#!/usr/bin/env bash
# The two set-up commands of the README, each doing its own set-up on a fresh Debian machine:
#   ./run.sh demo   make a small synthetic Eiger dataset, compress it (-b 2 -s 2 -H 12), print a report
#   ./run.sh test   run the whole test suite
# Both create .venv (if missing), install OpenJPEG's shared library (Debian libopenjp2-7, which
# glymur needs and pip does not bring) and the package with its test extras.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
VENV=${VENV:-.venv}

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "run.sh: need root (or sudo) to run: $*" >&2; exit 1; fi; }

apt_install() {
  command -v apt-get >/dev/null || { echo "run.sh: please install: $* (no apt-get here)" >&2; exit 1; }
  if [ -z "${_APT_UPDATED:-}" ]; then as_root apt-get update -qq; _APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null
}

system_deps() {
  local need=()
  /sbin/ldconfig -p 2>/dev/null | grep -q 'libopenjp2\.so' || need+=(libopenjp2-7)
  "$PY" -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
  if ((${#need[@]})); then echo "run.sh: installing system packages: ${need[*]}"; apt_install "${need[@]}"; fi
}

venv() {
  local stamp="$VENV/.installed" warmed="$VENV/.warmed"
  if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    system_deps
    [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check -e '.[test]'
    touch "$stamp"
  fi
  # Bytecode for the package (pip writes it only for non-editable installs; Python would
  # compile every module at every start where PYTHONDONTWRITEBYTECODE is set): ~0.07 s a run.
  "$VENV/bin/python" -m compileall -q lbnl_dask >/dev/null || true
  # The numba kernels compiled once for the frame types runs meet (~20 s), not in a first run;
  # again after an install (numba's version is part of its cache) or a change to the package
  # (a few seconds when nothing needs compiling).
  if [ ! -f "$warmed" ] || [ "$stamp" -nt "$warmed" ] ||
    [ -n "$(find lbnl_dask -name '*.py' -newer "$warmed" -print -quit)" ]; then
    if "$VENV/bin/python" -m lbnl_dask.warm; then touch "$warmed"; else
      echo "run.sh: warning: the kernels were not compiled ahead; a first run compiles them" >&2
    fi
  fi
}

case "${1:-}" in
  demo) venv; shift; exec "$VENV/bin/lbnl-demo" "$@" ;;
  test) venv; shift; exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./run.sh demo|test [args...]" >&2; exit 2 ;;
esac
