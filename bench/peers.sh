# bench/peers.sh: sourced by bench/run.sh for --peers: starts Debian's
# nats-server, redis-server and mosquitto on 127.0.0.1 (a free port each
# time, a config in $tmp, the dev certificates in $tmp/certs for TLS) the
# way start_daemon starts dialogued: DPID and DPORT are set, stop_daemon
# and the EXIT trap stop them. Needs $tmp, $out and $PY from run.sh.
# shellcheck shell=bash disable=SC2154,SC2034 # run.sh sets $tmp and reads $DPORT

# The --target name of each server and its program.
peer_program() {
    case "$1" in
    nats) echo nats-server ;;
    redis) echo redis-server ;;
    mqtt) echo mosquitto ;;
    esac
}

# Prints why target $1 cannot run over transport $2, or nothing when it can.
peer_skip_reason() { # target tls|plain
    local prog
    prog=$(peer_program "$1")
    if ! command -v "$prog" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$prog" ]; then
        echo "$prog is not installed (./dev setup installs it)"
    elif [ "$1" = redis ] && [ "$2" = tls ]; then
        # redis-server has tls-port, but the client library has no TLS.
        echo "not measured: Debian 12's hiredis (0.14) has no TLS"
    fi
}

peer_path() { # program
    command -v "$1" 2>/dev/null || echo "/usr/sbin/$1"
}

free_port() {
    "$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Whether something listens on 127.0.0.1:$1 (from /proc: no connection is
# made, so a TLS listener logs no aborted handshake).
listening() {
    local hex
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A " /proc/net/tcp
}

# Starts server $1 (a --target name) over $2 (tls|plain), its output in $3.
# Returns 1 after saying what failed; the caller records no result then.
start_peer() { # target tls|plain logfile
    local prog path port
    prog=$(peer_program "$1")
    path=$(peer_path "$prog")
    port=$(free_port)
    local crt="$tmp/certs/server.crt" key="$tmp/certs/server.key"
    case "$1" in
    nats)
        local args=(-a 127.0.0.1 -p "$port")
        [ "$2" = tls ] && args+=(--tls --tlscert "$crt" --tlskey "$key")
        "$path" "${args[@]}" >"$3" 2>&1 &
        ;;
    redis)
        # Nothing on disk: no RDB snapshots, no append-only file.
        mkdir -p "$tmp/redis"
        "$path" --bind 127.0.0.1 --port "$port" --save '' --appendonly no \
            --protected-mode no --daemonize no --dir "$tmp/redis" >"$3" 2>&1 &
        ;;
    mqtt)
        # As dialogued and every client here: no Nagle delay. user: mosquitto
        # run as root would otherwise switch to a user that cannot read $tmp.
        {
            echo "user $(id -un)"
            echo "allow_anonymous true"
            echo "persistence false"
            echo "set_tcp_nodelay true"
            echo "log_dest stderr"
            echo "log_type error"
            echo "log_type warning"
            echo "listener $port 127.0.0.1"
            if [ "$2" = tls ]; then
                echo "certfile $crt"
                echo "keyfile $key"
            fi
        } >"$tmp/mosquitto.conf"
        "$path" -c "$tmp/mosquitto.conf" >"$3" 2>&1 &
        ;;
    *)
        echo "run.sh: unknown peer $1" >&2
        return 1
        ;;
    esac
    DPID=$!
    for _ in $(seq 200); do
        listening "$port" && break
        if ! kill -0 "$DPID" 2>/dev/null; then
            wait "$DPID" 2>/dev/null || true
            DPID=
            echo "run.sh: $prog ($2) exited before listening on 127.0.0.1:$port; its output:" >&2
            tail -n 20 "$3" >&2
            return 1
        fi
        sleep 0.05
    done
    if ! listening "$port"; then
        echo "run.sh: $prog ($2) is not listening on 127.0.0.1:$port after 10 s; stopped it" >&2
        stop_daemon
        return 1
    fi
    DPORT=$port
}
