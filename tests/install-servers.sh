#!/usr/bin/env bash
# Installs the real servers that tests marked `external` start on loopback (PostgreSQL,
# Prometheus with promtool) and the tools they run (amtool from Alertmanager; Node.js and npm for
# the dashboards' schema check), from Debian packages. The fixtures in tests/conftest.py and
# tests/metrics/test_observability.py start and stop them; this only installs what is missing.
# Then fills npm's cache (.npm-cache, git-ignored) with grafana/schema-check's locked packages.
# kubectl (tests/deploy) is expected on the machine.
set -euo pipefail
missing=()
if ! compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null; then
  missing+=(postgresql)
fi
if [ ! -x /usr/bin/prometheus ]; then
  missing+=(prometheus)
fi
if [ ! -x /usr/bin/amtool ]; then
  missing+=(prometheus-alertmanager)
fi
# kubectl renders deploy/kubernetes (tests/deploy/test_kubernetes.py); Debian's kubernetes-client
# is too old for its kustomize, so it is not installed from here.
if ! command -v kubectl >/dev/null; then
  echo "install-servers: kubectl is missing (tests/deploy/test_kubernetes.py needs it): install it" >&2
  echo "  from https://kubernetes.io/docs/tasks/tools/ (the apt repository pkgs.k8s.io)" >&2
fi
if ! command -v npm >/dev/null; then
  missing+=(nodejs npm)
fi
npm_ci() {  # the exact versions of package-lock.json, cached under the checkout
  (cd "$(dirname "$0")/../grafana/schema-check" &&
    npm_config_cache="$PWD/../../.npm-cache" npm ci --no-audit --no-fund --loglevel=error)
}
if [ ${#missing[@]} -eq 0 ]; then
  npm_ci
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
if [[ " ${missing[*]} " == *" prometheus-alertmanager "* ]]; then
  echo "install-servers: installing Alertmanager (amtool) from Debian packages"
  apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
if [[ " ${missing[*]} " == *" npm "* ]]; then
  echo "install-servers: installing Node.js and npm from Debian packages"
  apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
fi
npm_ci
