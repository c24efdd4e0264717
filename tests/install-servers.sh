#!/usr/bin/env bash
# Installs the real servers that tests marked `external` start on loopback (PostgreSQL), from
# Debian packages. The fixtures in tests/conftest.py start and stop them; this only installs.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-servers: PostgreSQL is missing and this is not root; run as root:" >&2
  echo "  apt-get update && apt-get install -y postgresql" >&2
  echo "or skip the tests that need it: .venv/bin/pytest -m 'not external'" >&2
  exit 1
fi
echo "install-servers: installing PostgreSQL from Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql >/dev/null
