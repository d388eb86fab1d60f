#!/usr/bin/env bash
# Installs (when missing) and starts a local PostgreSQL for the store tests, then prints its URL.
# Debian, as root; safe to run again. Everything but the URL goes to stderr, so CI can write:
#   export CONNECTOR_TEST_POSTGRES_URL="$(bash scripts/ci-postgres.sh)"
set -euo pipefail

PORT=5432
ROLE=connector
PASSWORD=connector
DATABASE=connector_test
URL="postgresql://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DATABASE"

say() { echo "ci-postgres: $*" >&2; }

# The newest server major version installed, or nothing.
server_version() {
    local binary
    for binary in /usr/lib/postgresql/*/bin/postgres; do
        [[ -x $binary ]] && basename "$(dirname "$(dirname "$binary")")"
    done | sort -n | tail -n 1
}

# As the postgres superuser over the local socket (peer authentication); from / so that psql can
# read its working directory.
admin_psql() { (cd / && runuser -u postgres -- psql -p "$PORT" -X -q -v ON_ERROR_STOP=1 "$@"); }

if ! command -v pg_ctlcluster >/dev/null || [[ -z $(server_version) ]]; then
    say "installing PostgreSQL with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o Acquire::Retries=3 update -qq >&2
    apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends postgresql >&2
fi
VERSION=$(server_version)

if ! pg_lsclusters -h | awk -v v="$VERSION" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
    say "creating cluster $VERSION/main"
    pg_createcluster --port "$PORT" "$VERSION" main >&2
fi
if [[ $(pg_conftool -s "$VERSION" main show port) != "$PORT" ]]; then
    pg_conftool "$VERSION" main set port "$PORT"
    pg_ctlcluster "$VERSION" main stop >/dev/null 2>&1 || true  # restarted below on the new port
fi
# Exit status 3 means stopped; starting a running cluster would be an error.
if ! pg_ctlcluster "$VERSION" main status >/dev/null 2>&1; then
    say "starting cluster $VERSION/main on port $PORT"
    pg_ctlcluster "$VERSION" main start >&2
fi
for _ in $(seq 30); do
    pg_isready -q -h 127.0.0.1 -p "$PORT" && break
    sleep 1
done

admin_psql <<SQL
SELECT format('CREATE ROLE %I', '$ROLE') WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$ROLE')
\gexec
ALTER ROLE "$ROLE" LOGIN PASSWORD '$PASSWORD';
SELECT format('CREATE DATABASE %I OWNER %I', '$DATABASE', '$ROLE')
    WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '$DATABASE')
\gexec
SQL

# Proves the URL itself works: TCP on 127.0.0.1 with the password.
psql "$URL" -X -q -t -c "SELECT 1" >/dev/null
say "ready in ${SECONDS}s"
echo "$URL"
