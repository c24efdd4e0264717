#!/usr/bin/env bash
# Installs the real servers that tests marked `external` start on loopback (PostgreSQL,
# Prometheus with promtool) and the checkers of deploy/ (promtool, amtool from
# prometheus-alertmanager), from Debian packages. The fixtures in tests/conftest.py and
# tests/test_observability.py start and stop them; this only installs what is missing.
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
if [[ " ${missing[*]} " == *" prometheus-alertmanager "* ]]; then
  echo "install-servers: installing Alertmanager (amtool) from Debian packages"
  apt-get install -y -qq --no-install-recommends prometheus-alertmanager >/dev/null
fi
