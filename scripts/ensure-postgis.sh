#!/usr/bin/env bash
# Makes PostgreSQL 15 + PostGIS 3 binaries available for the test suite.
# The tests start their own throw-away cluster (tests/pg.py); nothing here starts a server.
set -euo pipefail
PGBIN=${CAPMON_PG_BIN:-/usr/lib/postgresql/15/bin}
control=/usr/share/postgresql/15/extension/postgis.control
if [[ -x "$PGBIN/initdb" && -f "$control" ]]; then
    exit 0
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "PostgreSQL 15 + PostGIS are missing and this user cannot install them." >&2
    echo "Install: apt-get install postgresql-15 postgresql-15-postgis-3 (or set CAPMON_PG_BIN)." >&2
    exit 1
fi
echo "Installing PostgreSQL 15 + PostGIS 3 from Debian packages..."
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends postgresql-15 postgresql-15-postgis-3 >/dev/null
