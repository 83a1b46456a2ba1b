#!/usr/bin/env bash
# postgres-setup.sh makes a PostgreSQL server from Debian's packages ready
# for the tests of incident/pgstore and examples/postgres, and prints the
# line that points them at it:
#
#	eval "$(bash .ci/postgres-setup.sh)"
#	(cd incident/pgstore && go test -race -count=1 ./...)
#	(cd examples/postgres && go test -race -count=1 ./...)
#
# It is idempotent and needs root and nothing running: it installs the
# packages when they are missing, creates the cluster when there is none,
# starts it with pg_ctlcluster (no systemd) listening on loopback only, and
# creates the role and database "breach" (password "breach") when missing.
# Progress goes to stderr; only the export line goes to stdout.
set -euo pipefail

log() { echo "postgres-setup: $*" >&2; }

DB=breach
ROLE=breach
PASSWORD=breach
PORT=${BREACH_POSTGRES_PORT:-5432}

if [ "$(id -u)" -ne 0 ]; then
	log "must run as root (it installs packages and starts the server)"
	exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
	log "installing PostgreSQL from Debian's packages"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq >&2
	# The package's scripts may try to start the server through
	# invoke-rc.d; without an init system that fails harmlessly, and we
	# start it below ourselves.
	apt-get install -y -qq postgresql >&2
fi

# The newest installed major version.
VERSION=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
CLUSTER=main
log "PostgreSQL $VERSION"

if ! pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { found = 1 } END { exit !found }'; then
	log "creating cluster $VERSION/$CLUSTER on port $PORT"
	pg_createcluster --port "$PORT" "$VERSION" "$CLUSTER" >&2
fi

CONF=/etc/postgresql/$VERSION/$CLUSTER/postgresql.conf
# Loopback only, whatever the cluster was created with; conf.d overrides
# postgresql.conf and survives package upgrades.
mkdir -p "/etc/postgresql/$VERSION/$CLUSTER/conf.d"
cat >"/etc/postgresql/$VERSION/$CLUSTER/conf.d/breach.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $PORT
max_connections = 200
EOF
chown -R postgres:postgres "/etc/postgresql/$VERSION/$CLUSTER/conf.d"
grep -q "^include_dir = 'conf.d'" "$CONF" || echo "include_dir = 'conf.d'" >>"$CONF"

# The socket directory lives under /run, which may be empty on a fresh boot.
install -d -o postgres -g postgres -m 2775 /var/run/postgresql

status=$(pg_lsclusters -h | awk -v v="$VERSION" -v c="$CLUSTER" '$1 == v && $2 == c { print $4 }')
if [ "$status" != "online" ]; then
	log "starting cluster $VERSION/$CLUSTER"
	# A stale pid file left by a killed server keeps it from starting.
	pidfile=/var/lib/postgresql/$VERSION/$CLUSTER/postmaster.pid
	if [ -f "$pidfile" ] && ! kill -0 "$(head -n 1 "$pidfile")" 2>/dev/null; then
		rm -f "$pidfile"
	fi
	pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

psql_admin() {
	runuser -u postgres -- psql --cluster "$VERSION/$CLUSTER" -v ON_ERROR_STOP=1 -qtA "$@"
}

# Wait for the server to take connections (bounded).
for i in $(seq 1 60); do
	if psql_admin -c 'select 1' >/dev/null 2>&1; then
		break
	fi
	if [ "$i" -eq 60 ]; then
		log "server did not come up; log:"
		tail -n 50 "/var/log/postgresql/postgresql-$VERSION-$CLUSTER.log" >&2 || true
		exit 1
	fi
	sleep 0.5
done

if [ "$(psql_admin -c "select 1 from pg_roles where rolname = '$ROLE'")" != "1" ]; then
	log "creating role $ROLE"
	psql_admin -c "create role $ROLE login password '$PASSWORD'"
fi
if [ "$(psql_admin -c "select 1 from pg_database where datname = '$DB'")" != "1" ]; then
	log "creating database $DB"
	# UTF-8 whatever the cluster's default, and byte order for text.
	psql_admin -c "create database $DB owner $ROLE encoding 'UTF8' lc_collate 'C' lc_ctype 'C' template template0"
fi

URL="postgres://$ROLE:$PASSWORD@127.0.0.1:$PORT/$DB?sslmode=disable"
# Check the URL works over TCP with the password, as the tests connect.
if ! PGPASSWORD=$PASSWORD psql "$URL" -qtAc 'select 1' >/dev/null; then
	log "cannot connect to $URL"
	exit 1
fi
log "ready: $URL"
echo "export BREACH_POSTGRES_URL='$URL'"
