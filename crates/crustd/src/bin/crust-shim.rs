//! The `crust-shim` binary: crust's per-container monitor (code in the crust-shim crate).

fn main() {
    crust_shim::run()
}
