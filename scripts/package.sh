#!/usr/bin/env bash
# Builds the Debian package (target/debian/crust_VERSION_ARCH.deb) with cargo-deb (installed
# from crates.io when missing): crustd, crust and crust-shim in /usr/bin, the systemd unit
# (packaging/crustd.service), /etc/crust/config.toml as a conffile, dependencies on runc,
# containernetworking-plugins and iptables.
# Usage: scripts/package.sh [--profile dev]   (dev: reuse the debug build, for the package test;
# cargo-deb 3.8 warns that it will stop taking the dev profile, hence the pinned version)
set -euo pipefail
cd "$(dirname "$0")/.."
if ! cargo deb --version >/dev/null 2>&1; then
    echo ">> installing cargo-deb"
    cargo install --quiet --locked cargo-deb --version 3.8.0
fi
# The package's assets include `crust` from the crust-cli crate: cargo deb builds only crustd's
# binaries, so build the CLI first with the same profile.
if [ $# -gt 0 ]; then
    cargo build --locked -p crust-cli "$@"
else
    cargo build --locked --release -p crust-cli
fi
cargo deb --locked -p crustd "$@"
