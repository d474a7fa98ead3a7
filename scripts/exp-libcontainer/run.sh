#!/usr/bin/env bash
# #16 item 3: container create+start through youki's libcontainer (in-process) against runc (a Go
# binary started twice: create, start) on the same bundle, N rounds interleaved, alternating
# which goes first. Usage: scripts/exp-libcontainer/run.sh [N]   (as root; leaves nothing behind)
set -euo pipefail
cd "$(dirname "$0")"
n=${1:-50}
root=$(cd ../.. && pwd)
CARGO_TARGET_DIR="$root/target/exp-libcontainer" cargo build --release --locked -q
work=$(mktemp -d /tmp/exp-libcontainer.XXXXXX)
cleanup() {
    runc --root /run/exp-lc/runc list -q 2>/dev/null | xargs -r -n1 runc --root /run/exp-lc/runc delete --force || true
    rm -rf "$work" /run/exp-lc
}
trap cleanup EXIT
mkdir -p "$work/bundle/rootfs/bin"
cp /bin/busybox "$work/bundle/rootfs/bin/busybox"
(cd "$work/bundle" && runc spec)
python3 - "$work/bundle/config.json" <<'PY'
import json, sys
p = sys.argv[1]
s = json.load(open(p))
s["process"]["terminal"] = False
s["process"]["args"] = ["/bin/busybox", "sleep", "1000"]
s["root"] = {"path": "rootfs", "readonly": True}
json.dump(s, open(p, "w"), indent=1)
PY
"$root/target/exp-libcontainer/release/exp-libcontainer" "$work/bundle" "$n"
