#!/usr/bin/env bash
# Streaming benchmark (issue #11): a local docker-registry holding a busybox image, a crustd of
# its own on scratch dirs with the embedded bridge network (its own bridge and subnet), and
# `crust bench --streaming`: Exec of `true` beside ExecSync and raw runc exec, 1 GiB through a
# forwarded connection beside a direct one to the pod IP, RSS per idle session.
# Usage: scripts/bench-streaming.sh [EXECS]   (release build; leaves nothing behind)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps docker-registry busybox-static
execs=${1:-50}
cargo build --release --locked -q
work=$(mktemp -d /tmp/crust-bench-stream.XXXXXX)
state=$(mktemp -d /run/crust-bench-stream.XXXXXX)
bridge=crustbs$((RANDOM % 1000))
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    ip link del "$bridge" 2>/dev/null || true
    rm -rf "$work" "$state" "/var/lib/cni/networks/crust-bench-stream"
    rmdir /sys/fs/cgroup/*/crust-bench 2>/dev/null || true
}
trap cleanup EXIT
start_registry "$work"
push_busybox "$addr"
cat > "$work/config.toml" <<TOML
[cni]
conf_dir = "$work/net.d"
default_network = true
default_network_bridge = "$bridge"
default_network_subnet = "10.231.$((RANDOM % 200)).0/24"
TOML
target/release/crustd --socket "$work/crust.sock" --root "$work/root" --state "$state" \
    --config "$work/config.toml" >"$work/crustd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/crust.sock" ] && break; sleep 0.1; done
target/release/crust --socket "$work/crust.sock" bench --streaming "$addr/bench/busybox:1" \
    --pods "$execs" --crust-state "$state" --runc "$(command -v runc)"
