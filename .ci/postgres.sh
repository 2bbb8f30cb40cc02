#!/usr/bin/env bash
# Make a PostgreSQL *server binary* available for tests/test_tuning.py::test_two_workers_postgres.
# Idempotent: does nothing when initdb is already on PATH or in Debian's /usr/lib/postgresql/<v>/bin.
# Otherwise installs Debian's `postgresql` package (root or sudo + apt-get) without creating the default
# cluster or starting a service: the test runs its own throwaway server (initdb + pg_ctl) on a unix socket in a
# temporary folder. Where neither initdb nor apt-get exists it only warns; the test is then skipped.
set -euo pipefail

if command -v initdb >/dev/null 2>&1 || compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    echo "postgres.sh: initdb present, nothing to install"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "postgres.sh: no initdb and no apt-get; the PostgreSQL test will be skipped" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
APT=(apt-get install -y -q --no-install-recommends -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)
$SUDO apt-get update -q
# As in the official postgres Docker image: no "main" cluster is created when the server package installs.
$SUDO "${APT[@]}" postgresql-common
$SUDO sed -ri 's/^#?\s*(create_main_cluster)\s*=.*$/\1 = false/' /etc/postgresql-common/createcluster.conf
# No service start either (policy-rc.d exit 101), unless the machine already has its own policy.
if [ ! -e /usr/sbin/policy-rc.d ]; then
    $SUDO sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d'
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO "${APT[@]}" postgresql
echo "postgres.sh: installed $(compgen -G '/usr/lib/postgresql/*/bin/initdb')"
