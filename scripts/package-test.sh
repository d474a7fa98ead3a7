#!/usr/bin/env bash
# The Debian package end to end, as root on this machine: build it (the debug build unless
# CRUST_DEB_PROFILE=release), install it with dpkg, start crustd the way crustd.service does
# (ExecStart=/usr/bin/crustd: default config, socket and dirs; no systemd here), run a
# host-network pod with the packaged crust CLI (and crust doctor), stop crustd with SIGTERM, purge
# the package and check that nothing is left but /var/lib/crust, which purge keeps (removed here
# afterwards). Refuses to run over a crustd already serving /run/crust/crust.sock.
set -euo pipefail
cd "$(dirname "$0")/.."
profile=${CRUST_DEB_PROFILE:-dev}
work=$(mktemp -d /tmp/crust-pkgtest-XXXXXX)
crustd_pid=

fail() { echo "!! package test: $*" >&2; [ -f "$work/crustd.log" ] && tail -30 "$work/crustd.log" >&2; exit 1; }
cleanup() {
    if [ -n "$crustd_pid" ] && kill -0 "$crustd_pid" 2>/dev/null; then
        # A failed run: its pods go first, through crustd, so nothing of them outlives the test.
        for p in $(/usr/bin/crust pods -q 2>/dev/null); do
            /usr/bin/crust stopp "$p" >/dev/null 2>&1 || true
            /usr/bin/crust rmp "$p" >/dev/null 2>&1 || true
        done
        kill -TERM "$crustd_pid"
        wait "$crustd_pid" || true
    fi
    if dpkg-query -W -f='${Status}' crust 2>/dev/null | grep -q installed; then dpkg --purge crust >/dev/null || true; fi
    rm -rf /var/lib/crust /run/crust "$work"
}

if [ -S /run/crust/crust.sock ] || dpkg-query -W -f='${Status}' crust 2>/dev/null | grep -q "install ok"; then
    echo "!! a crust is installed or serves /run/crust/crust.sock here: not testing the package over it" >&2
    exit 1
fi
if [ -e /var/lib/crust ]; then
    echo "!! /var/lib/crust exists: not testing the package over it" >&2
    exit 1
fi
trap cleanup EXIT

echo ">> building the package (profile $profile)"
bash scripts/package.sh --profile "$profile" >"$work/package.log" 2>&1 || { tail -20 "$work/package.log"; fail "cargo deb"; }
deb=$(ls -t target/debian/crust_*.deb | head -1)
echo ">> dpkg -i $deb"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log"; fail "dpkg -i"; }
for f in /usr/bin/crustd /usr/bin/crust /usr/bin/crust-shim /lib/systemd/system/crustd.service /etc/crust/config.toml; do
    [ -e "$f" ] || fail "$f not installed"
done
grep -qx /etc/crust/config.toml /var/lib/dpkg/info/crust.conffiles || fail "config.toml is not a conffile"
dpkg-query -W -f='${Depends}\n' crust | grep -q runc || fail "no dependency on runc"
dpkg-query -W -f='${Depends}\n' crust | grep -q containernetworking-plugins || fail "no dependency on containernetworking-plugins"

echo ">> starting /usr/bin/crustd as crustd.service would"
/usr/bin/crustd >"$work/crustd.log" 2>&1 &
crustd_pid=$!
for _ in $(seq 200); do /usr/bin/crust version >/dev/null 2>&1 && break; sleep 0.1; done
/usr/bin/crust version >/dev/null || fail "crustd did not come up"
/usr/bin/crust doctor >"$work/doctor.log" || { cat "$work/doctor.log"; fail "crust doctor"; }

cat >"$work/pod.yaml" <<POD
metadata: {name: pkgtest, namespace: default, uid: pkgtest-0001, attempt: 0}
hostname: pkgtest
log_directory: $work/logs
linux:
  cgroup_parent: /crust-pkgtest
  security_context:
    namespace_options: {network: 2, pid: 0, ipc: 0}
POD
pod=$(/usr/bin/crust runp "$work/pod.yaml")
/usr/bin/crust pods | grep -qw "Ready" || fail "the pod is not Ready"
/usr/bin/crust stopp "$pod" >/dev/null
/usr/bin/crust rmp "$pod" >/dev/null
[ -z "$(/usr/bin/crust pods -q)" ] || fail "pods left"
kill -TERM "$crustd_pid"
wait "$crustd_pid" || fail "crustd did not exit cleanly on SIGTERM"
crustd_pid=
[ -z "$(runc --root /run/crust/runtime/runc list -q 2>/dev/null)" ] || fail "runc containers left"
! grep -qE " (/var/lib/crust|/run/crust)[/ ]" /proc/self/mountinfo || fail "mounts left"
[ -z "$(find /sys/fs/cgroup/*/crust-pkgtest -mindepth 1 -type d 2>/dev/null)" ] || fail "cgroups left"

echo ">> dpkg --purge crust"
dpkg --purge crust >"$work/purge.log" 2>&1 || { cat "$work/purge.log"; fail "dpkg --purge"; }
for f in /usr/bin/crustd /usr/bin/crust /usr/bin/crust-shim /lib/systemd/system/crustd.service /etc/crust /run/crust; do
    [ ! -e "$f" ] || fail "$f left after purge"
done
[ -d /var/lib/crust ] || fail "purge removed /var/lib/crust (images and records are kept)"
rmdir /sys/fs/cgroup/*/crust-pkgtest 2>/dev/null || true
echo ">> package test passed"
