#!/usr/bin/env bash
# The second command: the whole test suite, as root, with real runc. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps "${CRUST_TEST_APT_PACKAGES[@]}"

# No test may write into the source tree: what git sees now must be what it sees after the tests
# (a test once wrote a file named `--pid-file` into crates/runc). target/ is ignored.
tree_state() { git status --porcelain --untracked-files=all 2>/dev/null | sort; }
tree_before=$(tree_state)
check_tree() {
    local after
    after=$(tree_state)
    if [ "$after" != "$tree_before" ]; then
        echo "!! the tests changed the source tree:" >&2
        diff <(echo "$tree_before") <(echo "$after") >&2 || true
        exit 1
    fi
}

echo ">> cargo fmt --check"
cargo fmt --all --check
echo ">> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --workspace --all-targets --features crustd/failpoints -- -D warnings
echo ">> cargo test (unit, end-to-end, failpoints)"
cargo test --locked --workspace --features crustd/failpoints
check_tree

echo ">> fuzz every target briefly (scripts/fuzz.sh SECONDS [TARGET...] for longer)"
bash scripts/fuzz.sh 10
check_tree

echo ">> independent client: Python grpcio"
venv=target/pyvenv
if [ ! -x "$venv/bin/pytest" ]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
fi
stubs=target/pystubs
mkdir -p "$stubs"
"$venv/bin/python" -m grpc_tools.protoc -I crates/cri-api/proto \
    --python_out="$stubs" --grpc_python_out="$stubs" crates/cri-api/proto/api.proto
PYTHONDONTWRITEBYTECODE=1 CRUSTD=target/debug/crustd PYTHONPATH="$stubs" "$venv/bin/pytest" -q -p no:cacheprovider tests/python
check_tree

echo ">> the Debian package: build, install, run a pod, purge"
bash scripts/package-test.sh
check_tree
