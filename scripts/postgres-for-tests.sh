#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server (Debian's postgresql package) for the tests that use one and prints
# its URL (RUNHERALD_TEST_POSTGRES_URL); why not, on stderr, with exit 1. Its data lives in a temporary
# directory; stop it with the pg_ctl command it prints on stderr. As root, the server runs as `postgres`.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "no PostgreSQL server here (Debian: apt-get install postgresql)" >&2
  exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/runherald-postgres.XXXXXX")
as_owner=()
if [ "$(id -u)" = 0 ]; then
  chown postgres "$dir"
  as_owner=(runuser -u postgres --)
fi
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
if ! "${as_owner[@]}" "$bin/initdb" -D "$dir/data" -A trust -U runherald --no-sync >"$dir/initdb.log" 2>&1; then
  echo "initdb failed:" >&2
  tail -n 20 "$dir/initdb.log" >&2
  exit 1
fi
# Throwaway: no fsync; sockets in its own directory, TCP on loopback only.
if ! "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
    -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" start >/dev/null; then
  echo "PostgreSQL did not start:" >&2
  tail -n 20 "$dir/server.log" >&2
  exit 1
fi
"${as_owner[@]}" "$bin/createdb" -h 127.0.0.1 -p "$port" -U runherald runherald_test
echo "PostgreSQL on 127.0.0.1:$port; stop it with: ${as_owner[*]} $bin/pg_ctl -D $dir/data stop" >&2
echo "postgresql+psycopg://runherald@127.0.0.1:$port/runherald_test"
