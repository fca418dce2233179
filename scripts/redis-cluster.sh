#!/usr/bin/env bash
# A local Redis Cluster for hookrelay's tests: three masters and three
# replicas on loopback ports BASE..BASE+5 (cluster bus on BASE-10000..,
# below the range the OS picks the local ports of outgoing connections from,
# which Redis's default of BASE+10000 falls into),
# without persistence, their data in a temporary folder.
#
#   scripts/redis-cluster.sh start [BASE]  # prints the redis+cluster:// URL
#   scripts/redis-cluster.sh stop [BASE]   # stops it and removes its data
#
# BASE may also come from REDIS_CLUSTER_PORT. Without either, start takes
# the first of 30001, 30101, … whose twelve ports are all free, and stop
# the first port of REDIS_CLUSTER_URL. Progress goes to stderr, the URL
# alone to stdout:
#
#   export REDIS_CLUSTER_URL=$(scripts/redis-cluster.sh start)
#   …
#   scripts/redis-cluster.sh stop
set -euo pipefail

nodes=6

usage() {
  echo "usage: $0 start [base-port] | stop [base-port]" >&2
  exit 2
}

# in_use port: does something listen on 127.0.0.1:port?
in_use() {
  timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# state_dir base: where the cluster on base keeps its data and pid files.
state_dir() { echo "${TMPDIR:-/tmp}/hookrelay-redis-cluster-$1"; }

ports_of() { seq "$1" $(($1 + nodes - 1)); }

free_base() { # base: are all its node and bus ports free?
  local p
  for p in $(ports_of "$1"); do
    if in_use "$p" || in_use $((p - 10000)); then return 1; fi
  done
}

# settled port: does the node see the whole cluster in place?
settled() {
  local info
  info=$(redis-cli -p "$1" cluster info | tr -d '\r')
  [[ "$info" == *cluster_state:ok* ]] || return 1
  (($(redis-cli -p "$1" cluster nodes | awk '$3 ~ /slave/' | wc -l) == nodes / 2)) || return 1
  info=$(redis-cli -p "$1" info replication | tr -d '\r')
  [[ "$info" != *role:master* || "$info" == *slave0:*state=online* ]]
}

stop() {
  local base=$1 dir p
  dir=$(state_dir "$base")
  [[ -d "$dir" ]] || { echo "no cluster on $base (no $dir)" >&2; return 0; }
  for p in $(ports_of "$base"); do
    if [[ -f "$dir/$p/redis.pid" ]]; then
      kill "$(cat "$dir/$p/redis.pid")" 2>/dev/null || true
    fi
  done
  for p in $(ports_of "$base"); do
    for _ in $(seq 50); do in_use "$p" || break; sleep 0.1; done
  done
  rm -rf "$dir"
  echo "stopped the Redis Cluster on 127.0.0.1:$base-$((base + nodes - 1))" >&2
}

start() {
  local base=$1 dir p addrs=() url
  command -v redis-server >/dev/null && command -v redis-cli >/dev/null ||
    { echo "redis-server and redis-cli must be on PATH" >&2; exit 1; }
  # Starts that run at once (test processes in parallel) take turns to
  # choose ports and bind them; the servers must not inherit the lock.
  exec 9>"${TMPDIR:-/tmp}/hookrelay-redis-cluster.lock"
  flock 9
  if [[ -z "$base" ]]; then
    for base in $(seq 30001 100 39901); do free_base "$base" && break; done
  fi
  free_base "$base" || { echo "a port of 127.0.0.1:$base-$((base + nodes - 1)) (or its bus port, -10000) is in use" >&2; exit 1; }
  dir=$(state_dir "$base")
  rm -rf "$dir"
  # A start that fails half-way stops what it started.
  trap 'stop "$base"' ERR
  for p in $(ports_of "$base"); do
    mkdir -p "$dir/$p"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$p" \
      --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 --cluster-port $((p - 10000)) \
      --save "" --appendonly no --repl-diskless-sync-delay 0 --dir "$dir/$p" --logfile "$dir/$p/redis.log" --pidfile "$dir/$p/redis.pid" 9>&-
    addrs+=("127.0.0.1:$p")
  done
  for p in $(ports_of "$base"); do
    for _ in $(seq 50); do redis-cli -p "$p" ping >/dev/null 2>&1 && break; sleep 0.1; done
    redis-cli -p "$p" ping >/dev/null 2>&1 || { echo "redis-server on $p did not start:" >&2; cat "$dir/$p/redis.log" >&2; false; }
  done
  exec 9>&-
  redis-cli --cluster create "${addrs[@]}" --cluster-replicas 1 --cluster-yes >"$dir/create.log" 2>&1 ||
    { echo "redis-cli --cluster create failed:" >&2; cat "$dir/create.log" >&2; false; }
  # Every node must see every slot served and every replica in place, and
  # each master its replica online (synced), before a client is told to go.
  for p in $(ports_of "$base"); do
    for _ in $(seq 100); do settled "$p" && break; sleep 0.1; done
    settled "$p" || { echo "node $p: not settled after 10s:" >&2; redis-cli -p "$p" cluster info >&2; false; }
  done
  trap - ERR
  url="redis+cluster://127.0.0.1:$base"
  for p in $(ports_of "$base" | tail -n +2); do url+=$([[ "$url" == *\?* ]] && echo "&" || echo "?")"addr=127.0.0.1:$p"; done
  echo "Redis Cluster (3 masters, 3 replicas) on 127.0.0.1:$base-$((base + nodes - 1)), data in $dir" >&2
  echo "$url"
}

case "${1:-}" in
  start) start "${2:-${REDIS_CLUSTER_PORT:-}}" ;;
  stop)
    base=${2:-${REDIS_CLUSTER_PORT:-$(sed -nE 's#^[a-z+]+://([^@/?]*@)?[^:/?]+:([0-9]+).*#\2#p' <<<"${REDIS_CLUSTER_URL:-}")}}
    [[ -n "$base" ]] || usage
    stop "$base"
    ;;
  *) usage ;;
esac
