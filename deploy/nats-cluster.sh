#!/usr/bin/env bash
# A three-node JetStream cluster on this machine's loopback, to run
# packledger on --nats by hand: the same nodes test/cluster_test.go starts
# (nats-server built from the version go.mod pins, JetStream fsyncing every
# write, routes between the three), on fixed ports.
#
#   deploy/nats-cluster.sh start [DIR]    build nats-server, start n1 n2 n3
#   deploy/nats-cluster.sh status [DIR]   which nodes run, who leads LEDGER
#   deploy/nats-cluster.sh kill NODE [DIR]    SIGKILL one node (n1, n2 or n3)
#   deploy/nats-cluster.sh restart NODE [DIR] start a stopped node again
#   deploy/nats-cluster.sh stop [DIR]     stop all three
#
# DIR defaults to ./cluster. Clients: 127.0.0.1:14222-14224, routes:
# 16222-16224, monitoring: http://127.0.0.1:18222-18224.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PATH:/usr/local/go/bin"

cmd=${1:-}
node=""
case "$cmd" in
  kill|restart) node=${2:?"$cmd needs a node: n1, n2 or n3"}; dir=${3:-./cluster} ;;
  start|status|stop) dir=${2:-./cluster} ;;
  *) sed -n '2,16p' "$0"; exit 2 ;;
esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
bin="$dir/nats-server"
nodes=(n1 n2 n3)

port() { # node kind → port
  local i=${1#n}
  case $2 in client) echo $((14221 + i)) ;; route) echo $((16221 + i)) ;; http) echo $((18221 + i)) ;; esac
}

conf() { # node → its configuration file, written if missing
  local n=$1 f="$dir/$1.conf" routes=()
  for o in "${nodes[@]}"; do
    [ "$o" = "$n" ] || routes+=("nats-route://127.0.0.1:$(port "$o" route)")
  done
  if [ ! -f "$f" ]; then
    local joined
    joined=$(IFS=,; echo "${routes[*]}")
    cat >"$f" <<EOF
server_name: $n
listen: 127.0.0.1:$(port "$n" client)
http: 127.0.0.1:$(port "$n" http)
# Acknowledge a write only once it is on this node's disk.
jetstream { store_dir: "$dir/$n", sync_interval: always }
cluster { name: packledger, listen: 127.0.0.1:$(port "$n" route), routes: [${joined//,/, }] }
EOF
  fi
  echo "$f"
}

running() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

start_node() {
  local n=$1
  if running "$n"; then echo "$n already runs (pid $(cat "$dir/$n.pid"))"; return; fi
  nohup "$bin" -c "$(conf "$n")" >>"$dir/$n.log" 2>&1 &
  echo $! >"$dir/$n.pid"
  echo "$n started (pid $!), client nats://127.0.0.1:$(port "$n" client), log $dir/$n.log"
}

urls() {
  local u=()
  for n in "${nodes[@]}"; do u+=("nats://127.0.0.1:$(port "$n" client)"); done
  (IFS=,; echo "${u[*]}")
}

case "$cmd" in
  start)
    if [ ! -x "$bin" ]; then
      echo "building nats-server (the version go.mod pins) into $bin"
      go build -o "$bin" github.com/nats-io/nats-server/v2
    fi
    for n in "${nodes[@]}"; do start_node "$n"; done
    cat <<EOF

Then, from the repository (one key for every packledger server on this ledger):
  go run ./cmd/packledger key --init --key-file $dir/ledger.key
  go run ./cmd/packledger serve --demo --nats $(urls) --replicas 3 --key-file $dir/ledger.key --listen 127.0.0.1:8080
EOF
    ;;
  status)
    for n in "${nodes[@]}"; do
      if running "$n"; then echo "$n runs (pid $(cat "$dir/$n.pid"))"; else echo "$n stopped"; fi
    done
    for n in "${nodes[@]}"; do
      if running "$n"; then
        # The first leader after the stream details is the stream's; the
        # one before them leads the cluster's metadata.
        jsz=$(curl -s "http://127.0.0.1:$(port "$n" http)/jsz?streams=true" | tr -d ' \n')
        meta=$(echo "$jsz" | grep -o '"meta_cluster":{[^}]*' | grep -o '"leader":"[^"]*"' | cut -d'"' -f4 || true)
        leader=$(echo "$jsz" | grep -o '"stream_detail".*' | grep -o '"leader":"[^"]*"' | head -1 | cut -d'"' -f4 || true)
        echo "metadata leader: ${meta:-none}; stream LEDGER leader: ${leader:-none yet (is packledger serve started?)}"
        break
      fi
    done
    ;;
  kill)
    running "$node" || { echo "$node is not running"; exit 1; }
    kill -9 "$(cat "$dir/$node.pid")" && rm -f "$dir/$node.pid"
    echo "$node killed (SIGKILL)"
    ;;
  restart) start_node "$node" ;;
  stop)
    for n in "${nodes[@]}"; do
      if running "$n"; then kill "$(cat "$dir/$n.pid")"; rm -f "$dir/$n.pid"; echo "$n stopped"; fi
    done
    ;;
esac
