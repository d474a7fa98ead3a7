#!/usr/bin/env bash
# The first command: install what is missing, build, start crustd with its embedded defaults, and
# run a demo pod, printing its state. Safe to run again (the same pod is returned, not duplicated).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps

echo ">> building (release)"
cargo build --release --locked -p crustd -p crust-cli
install -m 0755 target/release/crustd target/release/crust target/release/crust-shim /usr/local/bin/

if crust version >/dev/null 2>&1; then
    echo ">> crustd is already serving /run/crust/crust.sock"
else
    echo ">> starting crustd (log: /var/log/crustd.log)"
    nohup crustd >>/var/log/crustd.log 2>&1 &
    echo $! >/var/run/crustd.pid
    for _ in $(seq 100); do crust version >/dev/null 2>&1 && break; sleep 0.1; done
    crust version >/dev/null || { tail -20 /var/log/crustd.log; exit 1; }
fi
crust version
crust info | head -3

echo ">> crust runp examples/pod.yaml"
id=$(crust runp examples/pod.yaml)
echo "pod sandbox id: $id"
crust pods
crust inspectp "$id" | head -25
ip=$(crust inspectp "$id" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["network"]["ip"])')
echo ">> the pod's address is $ip; one ping from the host:"
ping -c 1 -W 2 "$ip"
cat <<TXT

The demo pod runs. Try:   crust pods    crust inspectp ${id:0:12}    crust events
Clean up with:            crust stopp ${id:0:12} && crust rmp ${id:0:12} && kill \$(cat /var/run/crustd.pid)
TXT
