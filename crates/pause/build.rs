//! Compiles `pause.c` into a static executable in OUT_DIR; `src/lib.rs` embeds it.

use std::{env, path::PathBuf, process::Command};

fn main() {
    println!("cargo:rerun-if-changed=pause.c");
    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("pause");
    let compiler = cc::Build::new().get_compiler();
    let status = Command::new(compiler.path())
        .args(["-static", "-Os", "-s", "-Wall", "-Werror", "-o"])
        .arg(&out)
        .arg("pause.c")
        .status()
        .expect("run the C compiler for pause.c");
    assert!(status.success(), "building the static pause binary failed");
}
