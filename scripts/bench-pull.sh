#!/usr/bin/env bash
# Pull benchmark (issue #4): a local docker-registry on a free loopback port holding a ~100 MB
# (compressed) five-layer image generated here, a crustd of its own on scratch dirs, and
# `crust bench --pull` comparing cold PullImage + unpack with skopeo copy + umoci unpack.
# Then a 20-pod container bench from that image and crustd's idle memory afterwards.
# Usage: scripts/bench-pull.sh [RUNS]   (release build; leaves nothing behind)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps "${CRUST_BENCH_APT_PACKAGES[@]}"
runs=${1:-3}
cargo build --release --locked -q
work=$(mktemp -d /tmp/crust-bench-pull.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    rm -rf "$work"
    rmdir /sys/fs/cgroup/*/crust-bench-pull /sys/fs/cgroup/crust-bench-pull 2>/dev/null || true
}
trap cleanup EXIT
start_registry "$work"
# The image: busybox plus four layers of files that are half random, half text (about 2:1
# compressible, like binaries), 200 MB unpacked, about 100 MB compressed.
python3 - "$work/layout" <<'PY'
import gzip, hashlib, io, json, os, random, sys, tarfile
out = sys.argv[1]
os.makedirs(f"{out}/blobs/sha256")
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(f"{out}/blobs/sha256/{d}", "wb").write(data)
    return "sha256:" + d, len(data)
rng = random.Random(42)
text = (b"the quick brown fox jumps over the lazy dog 0123456789\n" * 20000)
layers, diff_ids = [], []
for n in range(5):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        if n == 0:
            tar.add("/bin/busybox", arcname="bin/busybox")
        for i in range(40):
            size = 1 << 20
            data = rng.randbytes(size // 2) + text[: size // 2]
            info = tarfile.TarInfo(f"layer{n}/file{i:03}.bin")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    diff_ids.append("sha256:" + hashlib.sha256(raw.getvalue()).hexdigest())
    digest, size = put(gzip.compress(raw.getvalue(), 6))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/busybox", "sh"]},
                     "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
cdigest, csize = put(config)
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
                       "layers": layers}).encode()
mdigest, msize = put(manifest)
json.dump({"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
           "digest": mdigest, "size": msize, "annotations": {"org.opencontainers.image.ref.name": "bench"}}]},
          open(f"{out}/index.json", "w"))
open(f"{out}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
print("image: %.1f MB compressed in %d layers" % (sum(l["size"] for l in layers) / 1e6, len(layers)))
PY
skopeo copy --quiet --dest-tls-verify=false "oci:$work/layout:bench" "docker://$addr/bench/big:v1"
mkdir -p "$work/crust"
cat > "$work/crust/config.toml" <<TOML
[cni]
conf_dir = "$work/crust/net.d"
default_network = false
TOML
target/release/crustd --socket "$work/crust/crust.sock" --root "$work/crust/root" \
    --state "$work/crust/state" --config "$work/crust/config.toml" >"$work/crustd.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -S "$work/crust/crust.sock" ] && break; sleep 0.1; done
target/release/crust --socket "$work/crust/crust.sock" bench --pull "$addr/bench/big:v1" --runs "$runs"
# Then one busybox container per pod from that image, and crustd's memory once it is idle again
# (the "idle RSS after activity" figure: allocator retention would show here).
target/release/crust --socket "$work/crust/crust.sock" bench --pods 20 --host-network \
    --cgroup-parent /crust-bench-pull --container-image "$addr/bench/big:v1" \
    --container-cmd /bin/busybox sleep 3600
crustd_pid=${pids[1]}
for idle in 3 15; do
    sleep $((idle == 3 ? 3 : 12))
    echo "crustd memory ${idle} s after the pulls and containers:" \
        "$(grep -E '^(VmRSS|VmHWM|RssAnon|RssFile)' "/proc/$crustd_pid/status" | tr -s ' \t\n' ' ')"
done
