# Shared by scripts/demo.sh and scripts/test.sh: install what a fresh Debian 12 machine lacks.
# shellcheck shell=bash

# Debian packages crust needs at run time (runc, CNI plugins, iproute2/iptables for networking) and to
# build (gcc and the static libc for the built-in pause) and test (python3 venv for the grpcio client).
CRUST_APT_PACKAGES=(runc containernetworking-plugins iproute2 iptables iputils-ping gcc libc6-dev
                    python3 python3-venv python3-pip ca-certificates)
# Only for the test suite: a real registry (docker-registry), htpasswd for its basic auth
# (apache2-utils), busybox-static, from which the tests build their images, and skopeo, whose
# OCI archives `crust import` must read; openssl signs the test token server's JWTs.
CRUST_TEST_APT_PACKAGES=(docker-registry apache2-utils busybox-static skopeo openssl prometheus systemd runsc containerd)
# Only for `crust bench --pull`: the comparison pipeline.
CRUST_BENCH_APT_PACKAGES=(skopeo umoci docker-registry busybox-static)

# install_deps [EXTRA_PACKAGE...]: the run-time packages plus any extra ones.
install_deps() {
    local missing=()
    for p in "${CRUST_APT_PACKAGES[@]}" "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo ">> installing: ${missing[*]}"
        apt-get update -qq
        # Installing packages must not start services (docker-registry would listen on :5000):
        # the tests start their own registries on free loopback ports.
        local policy=/usr/sbin/policy-rc.d own_policy=0
        if [ ! -e "$policy" ]; then
            printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 755 "$policy" && own_policy=1
        fi
        local rc=0
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" || rc=$?
        if [ "$own_policy" = 1 ]; then rm -f "$policy"; fi
        if [ "$rc" != 0 ]; then exit "$rc"; fi
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        echo "crust needs a Rust toolchain (1.88 or newer, e.g. from rustup); cargo was not found" >&2
        exit 1
    fi
    if [ "$(id -u)" != 0 ]; then
        echo "crust runs containers and mounts: run this as root" >&2
        exit 1
    fi
}

# start_registry WORK: Debian's docker-registry on a free loopback port with its storage under
# WORK; sets $addr and appends its pid to the caller's pids array; returns once it answers.
start_registry() {
    local work=$1 port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    addr=127.0.0.1:$port
    cat > "$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: $addr
YML
    docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        python3 -c "import urllib.request,sys; urllib.request.urlopen('http://$addr/v2/', timeout=1)" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "docker-registry did not come up on $addr" >&2
    return 1
}

# push_busybox ADDR: busybox-static as /bin/busybox (with the applets the benches run) pushed as
# ADDR/bench/busybox:1 through the registry API.
push_busybox() {
python3 - "$1" <<'PY'
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
}
