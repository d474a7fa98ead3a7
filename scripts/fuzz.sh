#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 30):
#   crates/spdy/fuzz   frame_decoder (the SPDY frame decoder and header decompressor; AddressSanitizer)
#   crates/crust/fuzz  cri_container, cri_sandbox (CRI validation and CRI -> OCI spec conversion),
#                      cni_parse, image_documents, layer_unpack, auth_challenge, record_load
#                      (no sanitizer: safe Rust, where a panic is the finding; builds much faster)
# Each starts from the seeds `cargo run --example fuzz_seeds` writes and from the corpus of earlier
# runs; files under crates/*/fuzz/regressions/TARGET/ (crashes found before) are replayed first.
# cargo-fuzz is installed from crates.io when missing; the stable toolchain builds the targets
# with RUSTC_BOOTSTRAP=1. Everything it writes stays under target/fuzz; a crash is saved there
# and fails the run.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
shift || true
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo ">> installing cargo-fuzz"
    cargo install --quiet --locked cargo-fuzz
fi
out=$PWD/target/fuzz
mkdir -p "$out"
cargo run --quiet --locked -p crust --example fuzz_seeds -- "$out/seeds"

targets=(spdy:frame_decoder:address
    crust:cri_container:none crust:cri_sandbox:none crust:cni_parse:none crust:image_documents:none
    crust:layer_unpack:none crust:auth_challenge:none crust:record_load:none)
for entry in "${targets[@]}"; do
    IFS=: read -r crate target sanitizer <<<"$entry"
    if [ $# -gt 0 ] && [[ " $* " != *" $target "* ]]; then
        continue
    fi
    dir=crates/$crate/fuzz
    # A fuzz crate has its own Cargo.lock: stale, cargo fuzz would rewrite it (and the tree).
    cargo metadata --locked --format-version 1 --manifest-path "$dir/Cargo.toml" >/dev/null 2>&1 || {
        echo "!! $dir/Cargo.lock is stale: cargo update --workspace --manifest-path $dir/Cargo.toml" >&2
        exit 1
    }
    mkdir -p "$out/corpus/$target" "$out/artifacts/$target" "$out/seeds/$target"
    run() {
        RUSTC_BOOTSTRAP=1 cargo fuzz run --fuzz-dir "$dir" --target-dir "$out/build" -s "$sanitizer" \
            "$target" "$@"
    }
    # The whole output goes to a log; a failure shows its end (the crash and its input).
    log=$out/$target.log
    shown() {
        if "$@" >"$log" 2>&1; then
            tail -3 "$log"
        else
            tail -60 "$log"
            echo "!! $target failed: $log" >&2
            exit 1
        fi
    }
    if [ -d "$dir/regressions/$target" ]; then
        echo ">> replay $dir/regressions/$target"
        shown run "$dir/regressions/$target" -- -runs=0
    fi
    echo ">> fuzz $target for ${seconds}s"
    shown run "$out/corpus/$target" "$out/seeds/$target" -- \
        -max_total_time="$seconds" -artifact_prefix="$out/artifacts/$target/" -print_final_stats=1
done
