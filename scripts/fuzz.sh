#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30): the SPDY frame decoder and header
# decompressor (crates/spdy/fuzz). cargo-fuzz is installed from crates.io when missing; the
# stable toolchain builds the sanitized targets with RUSTC_BOOTSTRAP=1. Everything it writes
# (builds, corpus, crashes) stays under target/fuzz; a crash is saved there and fails the run.
# Usage: scripts/fuzz.sh [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo ">> installing cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi
out=$PWD/target/fuzz
mkdir -p "$out"
for target in frame_decoder; do
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target"
    echo ">> fuzz $target for ${seconds}s"
    RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir crates/spdy/fuzz --target-dir "$out/build" \
        "$target" "$out/corpus/$target" -- \
        -max_total_time="$seconds" -artifact_prefix="$out/artifacts/$target/" -print_final_stats=1 \
        2>&1 | tail -3
done
