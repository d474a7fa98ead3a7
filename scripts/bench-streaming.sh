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
# busybox-static as /bin/busybox with the applets the bench runs, pushed through the registry API.
python3 - "$addr" <<'PY'
import gzip, hashlib, io, json, os, sys, tarfile, urllib.request
addr = sys.argv[1]
def digest(b): return "sha256:" + hashlib.sha256(b).hexdigest()
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w") as tar:
    tar.add("/bin/busybox", arcname="bin/busybox")
    for applet in ["sh", "sleep", "true", "head", "nc", "httpd", "mkdir"]:
        info = tarfile.TarInfo(f"bin/{applet}"); info.type = tarfile.SYMTYPE; info.linkname = "busybox"
        tar.addfile(info)
layer_tar = raw.getvalue(); layer = gzip.compress(layer_tar)
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = json.dumps({"architecture": arch, "os": "linux", "config": {"Env": ["PATH=/bin"]},
                     "rootfs": {"type": "layers", "diff_ids": [digest(layer_tar)]}}).encode()
for blob in (layer, config):
    loc = urllib.request.urlopen(urllib.request.Request(f"http://{addr}/v2/bench/busybox/blobs/uploads/", method="POST")).headers["Location"]
    url = loc if loc.startswith("http") else f"http://{addr}{loc}"
    sep = "&" if "?" in url else "?"
    urllib.request.urlopen(urllib.request.Request(f"{url}{sep}digest={digest(blob)}", data=blob, method="PUT",
        headers={"Content-Type": "application/octet-stream"}))
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config), "size": len(config)},
    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest(layer), "size": len(layer)}]}).encode()
urllib.request.urlopen(urllib.request.Request(f"http://{addr}/v2/bench/busybox/manifests/1", data=manifest, method="PUT",
    headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"}))
PY
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
