#!/usr/bin/env bash
# Installs the real servers that tests marked `external` start on loopback (PostgreSQL,
# Prometheus with promtool), from Debian packages. The fixtures in tests/conftest.py and
# tests/test_observability.py start and stop them; this only installs what is missing.
set -euo pipefail
missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  missing+=(postgresql)
fi
if [ ! -x /usr/bin/prometheus ]; then
  missing+=(prometheus)
fi
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-servers: ${missing[*]} missing and this is not root; run as root:" >&2
  echo "  apt-get update && apt-get install -y --no-install-recommends ${missing[*]}" >&2
  echo "or skip the tests that need it: .venv/bin/pytest -m 'not external'" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
if [[ " ${missing[*]} " == *" postgresql "* ]]; then
  echo "install-servers: installing PostgreSQL from Debian packages"
  apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
if [[ " ${missing[*]} " == *" prometheus "* ]]; then
  echo "install-servers: installing Prometheus (and promtool) from Debian packages"
  apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi
