#!/usr/bin/env bash
# The second command: the whole test suite, as root, with real runc. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
install_deps "${CRUST_TEST_APT_PACKAGES[@]}"

echo ">> cargo fmt --check"
cargo fmt --all --check
echo ">> cargo clippy"
cargo clippy --locked --workspace --all-targets -- -D warnings
cargo clippy --locked --workspace --all-targets --features crustd/failpoints -- -D warnings
echo ">> cargo test (unit, end-to-end, failpoints)"
cargo test --locked --workspace --features crustd/failpoints

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
CRUSTD=target/debug/crustd PYTHONPATH="$stubs" "$venv/bin/pytest" -q tests/python
