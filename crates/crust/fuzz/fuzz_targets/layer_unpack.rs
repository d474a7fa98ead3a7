//! Layer extraction of arbitrary (plain, gzip or zstd) tar streams into a scratch root: never a
//! panic, and nothing lands outside the destination (the scratch dir beside it stays empty and
//! no file outside either is touched).
#![no_main]

use crust::image::unpack::{unpack_layer, Compression};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, layer)) = data.split_first() else {
        return;
    };
    let compression = match pick % 3 {
        0 => Compression::None,
        1 => Compression::Gzip,
        _ => Compression::Zstd,
    };
    let scratch = tempfile::tempdir().expect("scratch dir");
    let dest = scratch.path().join("dest");
    let beside = scratch.path().join("beside");
    std::fs::create_dir(&dest).expect("dest");
    std::fs::create_dir(&beside).expect("beside");
    let _ = unpack_layer(layer, compression, &dest, 16 << 20);
    let names: Vec<_> = std::fs::read_dir(scratch.path())
        .expect("scratch")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        names.len(),
        2,
        "only dest and beside in the scratch dir: {names:?}"
    );
    assert_eq!(
        std::fs::read_dir(&beside).expect("beside").count(),
        0,
        "written beside dest"
    );
});
