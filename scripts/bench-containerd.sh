#!/usr/bin/env bash
# crust against containerd on this machine (issue #6). Debian's containerd (installed on demand,
# its service never started) runs on scratch dirs beside a crustd of our own: both get the same
# CNI conflist (a bridge and subnet of this run), the same runc, and the same pause binary
# (containerd's sandbox image is made here from crust's built-in pause). `crust bench` drives both
# through their CRI sockets in one interleaved run (`--versus`, with the floor), then `--density`
# for memory.
# Then the same shim on both sides (#13): crust's `runc-shim` handler (type = "shim-v2",
# containerd-shim-runc-v2) beside containerd, whose CRI runs that shim for every pod, for
# RunPodSandbox and for pod + one container (busybox from a local docker-registry), and the
# per-pod memory of the shim under crust.
# Usage: scripts/bench-containerd.sh [PODS]   (release build; leaves nothing behind)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps containerd docker-registry busybox-static
pods=${1:-100}
cargo build --release --locked -q
work=$(mktemp -d /tmp/crust-bench-ctrd.XXXXXX)
state=/run/$(basename "$work") # tmpfs, like /run/crust and /run/containerd
bridge=cbench$((RANDOM % 100000))
# crust, containerd and the floor each hold PODS addresses at once: a /22.
subnet=10.$((200 + RANDOM % 50)).$((RANDOM % 64 * 4)).0/22
crust=target/release/crust
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    grep -oE " ($work|$state)[^ ]*" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "$work" "$state"
    ip link del "$bridge" 2>/dev/null || true
    for c in /sys/fs/cgroup/*/crust-bench-ctrd /sys/fs/cgroup/crust-bench-ctrd; do
        [ -d "$c" ] && rmdir "$c"/* "$c" 2>/dev/null || true
    done
}
trap 'echo "containerd log tail:"; tail -5 "$work/containerd.log" 2>/dev/null; cleanup' ERR
trap cleanup EXIT
mkdir -p "$work/net.d" "$state"
cat > "$work/net.d/10-bench.conflist" <<JSON
{"cniVersion": "1.0.0", "name": "crust-bench", "plugins": [
  {"type": "bridge", "bridge": "$bridge", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$subnet"}]], "dataDir": "$work/ipam"}},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON

wait_socket() { for _ in $(seq 200); do [ -S "$1" ] && return 0; sleep 0.05; done; echo "no socket $1" >&2; exit 1; }

# crustd, root on disk and state on tmpfs like its defaults.
start_registry "$work"
push_busybox "$addr"
printf '[cni]\nconf_dir = "%s"\ndefault_network = false\n' "$work/net.d" > "$work/crust.toml"
printf '[runtimes.runc-shim]\ntype = "shim-v2"\nshim = "containerd-shim-runc-v2"\n' >> "$work/crust.toml"
target/release/crustd --socket "$state/crust.sock" --root "$work/crust" --state "$state/crust" \
    --config "$work/crust.toml" --log warn >"$work/crustd.log" 2>&1 &
pids+=($!)
wait_socket "$state/crust.sock"

# containerd the same way, with the pause image built from crust's pause binary.
cat > "$work/containerd.toml" <<TOML
version = 2
root = "$work/containerd"
state = "$state/containerd"
[grpc]
  address = "$state/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "localhost/crust-bench/pause:1"
  # No CAP_SYS_RESOURCE here: oom_score_adj may not go below containerd's own (crustd clamps too).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$addr"]
    endpoint = ["http://$addr"]
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$work/net.d"
TOML
containerd --config "$work/containerd.toml" >"$work/containerd.log" 2>&1 &
pids+=($!)
wait_socket "$state/containerd.sock"
python3 - "$work/crust/images/builtin-pause/rootfs/pause" "$work/pause.tar" <<'PY'
import hashlib, io, json, os, sys, tarfile
pause, out = sys.argv[1], sys.argv[2]
blobs = {}
def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[d] = data
    return {"digest": d, "size": len(data)}
layer = io.BytesIO()
with tarfile.open(fileobj=layer, mode="w") as t:
    t.add(pause, arcname="pause")
layer = layer.getvalue()
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = put(json.dumps({"architecture": arch, "os": "linux", "config": {"Entrypoint": ["/pause"]},
                         "rootfs": {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(layer).hexdigest()]}}).encode())
manifest = put(json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": dict(config, mediaType="application/vnd.oci.image.config.v1+json"),
    "layers": [dict(put(layer), mediaType="application/vnd.oci.image.layer.v1.tar")]}).encode())
index = {"schemaVersion": 2, "manifests": [dict(manifest, mediaType="application/vnd.oci.image.manifest.v1+json",
    annotations={"io.containerd.image.name": "localhost/crust-bench/pause:1",
                 "org.opencontainers.image.ref.name": "1"})]}
with tarfile.open(out, "w") as t:
    def add(name, data):
        info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))
    add("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    add("index.json", json.dumps(index).encode())
    for d, data in blobs.items():
        add("blobs/sha256/" + d.split(":")[1], data)
PY
ctr --address "$state/containerd.sock" -n k8s.io images import "$work/pause.tar" >/dev/null

bench() { # RUNTIME SOCKET ARGS...
    local name=$1 sock=$2
    shift 2
    echo
    echo "=== $name: crust bench $*"
    "$crust" --socket "$sock" bench "$@" --conflist "$work/net.d/10-bench.conflist" \
        --crust-root "$work/crust" --crust-state "$state/crust" --cgroup-parent /crust-bench-ctrd
}
# crust against containerd in one run: the same pods batch by batch, crust, containerd and the
# floor back to back, rotating which goes first (`--versus`); the ratios are printed at the end.
ctrd=(--versus "$state/containerd.sock")
image="$addr/bench/busybox:1"
for c in 1 10; do
    bench crust-vs-containerd "$state/crust.sock" --pods "$pods" -c "$c" --floor "${ctrd[@]}"
done
bench crust-vs-containerd "$state/crust.sock" --pods "$pods" --container-image "$image" "${ctrd[@]}"
bench containerd "$state/containerd.sock" --density "$pods"
bench crust "$state/crust.sock" --density "$pods"

# The same shim: containerd-shim-runc-v2 under both.
for round in 1 2; do
    bench crust-runc-shim-vs-containerd "$state/crust.sock" --pods "$pods" --runtime runc-shim "${ctrd[@]}"
    bench crust-runc-shim-vs-containerd "$state/crust.sock" --pods "$pods" --runtime runc-shim \
        --container-image "$image" "${ctrd[@]}"
done
bench crust-runc-shim "$state/crust.sock" --density "$pods" --runtime runc-shim
