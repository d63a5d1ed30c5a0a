#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine (run as root) or a developer box:
# system packages the project needs (Mosquitto), a virtualenv in .venv, the project and its test deps.
# Safe to run again: each step checks before it acts.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3

need_apt=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need_apt+=(mosquitto)
command -v socat >/dev/null 2>&1 || need_apt+=(socat)  # virtual serial pairs for the Modbus RTU tests
command -v openssl >/dev/null 2>&1 || need_apt+=(openssl)  # deploy/mosquitto/make-test-certs.sh (TLS tests)
command -v systemd-analyze >/dev/null 2>&1 || need_apt+=(systemd)  # verifies deploy/systemd's unit
"$PY" -c 'import venv, ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
# Real servers for the metrics tests: VictoriaMetrics takes influxdb-client's v2 writes, influxd 1.x runs
# the dashboards' InfluxQL. Chromium (with CJK fonts) runs the console and report browser tests.
command -v victoria-metrics >/dev/null 2>&1 || need_apt+=(victoria-metrics)
command -v influxd >/dev/null 2>&1 || need_apt+=(influxdb)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
[ -d /usr/share/fonts/opentype/noto ] || need_apt+=(fonts-noto-cjk)
# PostgreSQL server binaries for the store tests (a private cluster per test session on a free port;
# the system cluster Debian starts on 5432 is never used).
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need ${need_apt[*]}; run as root or install them with apt-get" >&2
    exit 1
  fi
  echo "setup: apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
  # Debian's package starts a system broker on :1883; the project never relies on it.
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $PY"
  "$PY" -m venv .venv
fi

# Re-install only when the dependency list changed.
stamp=.venv/.estate-gateway-deps
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "setup: installing Python dependencies"
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e ".[test]"
  echo "$want" > "$stamp"
fi
