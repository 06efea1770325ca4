#!/bin/bash
# bench/idle.sh: the daemon's resident memory per idle connection: 10,000
# connections that said Hello, held 8 s (the sweep frees what only traffic
# needs), for dialogue/1 (plaintext, TLS) and WebSocket (plaintext).
#   bench/idle.sh   (about a minute; not a test: numbers for docs/websocket.md)
set -u
cd "$(dirname "$0")/.."
d=$(mktemp -d) && tools/devcerts.sh $d/certs >/dev/null
for mode in plain tls; do
  {
  echo "log_level: warn"
  echo "listen:"
  echo "  - address: 127.0.0.1:0"
  if [ $mode = plain ]; then echo "    tls: false"; else echo "    cert: $d/certs/server.crt"; echo "    key: $d/certs/server.key"; fi
  echo "limits: {heartbeat_ms: 3600000, max_connections: 20000, pre_auth_max_connections: 20000}"
  echo "auth: {anonymous: true}"
  echo "rooms:"
  echo '  - {id: bench, events: ["*"], default_subscriptions: [], join: ["*"], trigger: ["*"]}'
  } > $d/$mode.yaml
done
measure() {
  build/bin/dialogued --config $d/$1.yaml --port-file $d/port-$1-$2 > $d/log 2>&1 & local pid=$!
  for i in $(seq 50); do [ -s $d/port-$1-$2 ] && break; sleep 0.1; done
  local port=$(cat $d/port-$1-$2)
  local base=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  local fl=(--plaintext); [ $1 = tls ] && fl=(--ca $d/certs/ca.crt)
  timeout 120 build/bin/dialogue-bench --server 127.0.0.1:$port "${fl[@]}" --transport $2 --connections 10000 --conn-threads 2 --concurrency 200 --hold-ms 8000 --time-limit 100 --json > $d/out.json 2>&1 &
  local bp=$!
  sleep ${3:-9}
  local rss=$(awk '/VmRSS/{print $2}' /proc/$pid/status)
  wait $bp; kill $pid; wait $pid 2>/dev/null
  echo "$1 $2: base ${base} KiB, with 10000 idle: ${rss} KiB, per connection $(( (rss-base)*1024/10000 )) bytes; bench: $(python3 -c "import json;r=json.load(open('$d/out.json'));print(r['connected'], r['failed'], r['daemon_rss_per_connection_bytes'])")"
}
measure plain native; measure plain ws; measure tls native
rm -rf $d
