#!/usr/bin/env bash
# A throwaway PostgreSQL server for the PostgreSQL backend's tests, everything under one directory.
#
#   eval "$(bash scripts/postgres.sh start DIR)"   # starts it, prints `export` lines:
#       WID_TEST_DATABASE_URL       postgres://wid:PASSWORD@127.0.0.1:PORT/postgres?sslmode=disable
#       WID_TEST_DATABASE_TLS_URL   the same with sslmode=require
#       WID_TEST_DATABASE_CA        DIR/ca.pem, the CA of the server's certificate (127.0.0.1, localhost)
#   bash scripts/postgres.sh stop DIR              # stops it (fast shutdown)
#
# Debian's `postgresql` package is installed if no initdb exists under /usr/lib/postgresql/*/bin (as
# root; `openssl` likewise). initdb refuses to run as root, so as root the server runs as the
# `postgres` system user and DIR is handed to it. The server listens on 127.0.0.1 only, on a free
# port, with its socket in DIR; role `wid` is a superuser (tests create databases) with a random
# password (SCRAM). Starting an already running server prints its exports again.
set -euo pipefail

usage() {
    echo "usage: bash scripts/postgres.sh start|stop DIR" >&2
    exit 2
}
[[ $# -eq 2 ]] || usage
cmd=$1
dir=$2
[[ -n "$dir" ]] || usage
log() { printf 'postgres.sh: %s\n' "$*" >&2; }

# Runs a command as the server's user: `postgres` when we are root, else ourselves.
as_server() {
    if [[ $(id -u) -eq 0 ]]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

pg_bin() {
    local d
    d=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true)
    if [[ -n "$d" && -x "$d/initdb" ]]; then
        printf '%s\n' "$d"
    fi
}

# apt-get install, quietly; refreshes the package lists once if the install fails.
apt_install() {
    if [[ $(id -u) -ne 0 ]]; then
        log "$* is missing; install Debian's $* package (or run this as root)"
        exit 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -qq "$@" >/dev/null 2>&1; then
        apt-get update -qq >/dev/null
        apt-get install -y -qq "$@" >/dev/null
    fi
}

exports() {
    # shellcheck disable=SC1091
    source "$dir/server.env"
    local base="postgres://wid:${PGPASS}@127.0.0.1:${PGPORT}/postgres"
    printf 'export WID_TEST_DATABASE_URL=%q\n' "${base}?sslmode=disable"
    printf 'export WID_TEST_DATABASE_TLS_URL=%q\n' "${base}?sslmode=require"
    printf 'export WID_TEST_DATABASE_CA=%q\n' "$dir/ca.pem"
}

running() {
    [[ -f "$dir/server.env" && -f "$dir/data/postmaster.pid" ]] && as_server "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1
}

free_port() {
    if command -v python3 >/dev/null; then
        python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
        return
    fi
    local port
    for _ in $(seq 1 100); do
        port=$((20000 + RANDOM % 20000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            echo "$port"
            return
        fi
    done
    log "no free port found"
    exit 1
}

# A CA and a server certificate for 127.0.0.1 and localhost, signed by it (P-256, 30 days).
make_certificates() {
    command -v openssl >/dev/null || apt_install openssl
    local d=$1
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/ca.key" 2>/dev/null
    openssl req -x509 -new -key "$d/ca.key" -sha256 -days 30 -subj "/CN=wid test database CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -out "$d/ca.pem" 2>/dev/null
    openssl ecparam -name prime256v1 -genkey -noout -out "$d/server.key" 2>/dev/null
    openssl req -new -key "$d/server.key" -subj "/CN=localhost" -out "$d/server.csr" 2>/dev/null
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >"$d/server.ext"
    openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -sha256 \
        -days 30 -extfile "$d/server.ext" -out "$d/server.pem" 2>/dev/null
    chmod 600 "$d/ca.key" "$d/server.key"
}

start() {
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    bin=$(pg_bin)
    if [[ -z "$bin" ]]; then
        log "installing Debian's postgresql package"
        apt_install postgresql
        bin=$(pg_bin)
        [[ -n "$bin" ]] || { log "initdb not found after installing postgresql"; exit 1; }
    fi
    if running; then
        exports
        return
    fi
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
        rm -rf "$dir/data"
        make_certificates "$dir"
        local pass port
        pass=$(openssl rand -hex 16)
        port=$(free_port)
        printf 'PGPASS=%s\nPGPORT=%s\n' "$pass" "$port" >"$dir/server.env"
        printf '%s\n' "$pass" >"$dir/pwfile"
        chmod 600 "$dir/server.env" "$dir/pwfile"
        if [[ $(id -u) -eq 0 ]]; then
            id postgres >/dev/null 2>&1 || { log "there is no postgres system user to run the server as"; exit 1; }
            chown -R postgres:postgres "$dir"
            runuser -u postgres -- test -x "$dir" || {
                log "$dir is not reachable by the postgres user; use a directory under /tmp"
                exit 1
            }
        fi
        as_server "$bin/initdb" -D "$dir/data" -U wid --auth=scram-sha-256 --pwfile="$dir/pwfile" \
            -E UTF8 --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; exit 1; }
        rm -f "$dir/pwfile"
        cat >>"$dir/data/postgresql.conf" <<EOF

# scripts/postgres.sh: a throwaway test server.
listen_addresses = '127.0.0.1'
port = $port
unix_socket_directories = '$dir'
ssl = on
ssl_cert_file = '$dir/server.pem'
ssl_key_file = '$dir/server.key'
max_connections = 200
EOF
    fi
    # shellcheck disable=SC1091
    source "$dir/server.env"
    as_server "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -W start >/dev/null
    for _ in $(seq 1 300); do
        if "$bin/pg_isready" -q -h 127.0.0.1 -p "$PGPORT"; then
            exports
            return
        fi
        sleep 0.1
    done
    log "the server did not accept connections within 30 s; its log:"
    cat "$dir/postgres.log" >&2 || true
    exit 1
}

stop() {
    [[ -d "$dir/data" ]] || return 0
    bin=$(pg_bin)
    [[ -n "$bin" ]] || return 0
    as_server "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

case "$cmd" in
start) start ;;
stop) stop ;;
*) usage ;;
esac
