//! Sandbox, container and image records loaded from arbitrary file contents: an error or a
//! record, never a panic (crustd keeps and reports what it cannot read).
#![no_main]

use crust::{container, image, sandbox, store::load_record};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("scratch dir");
    let path = dir.path().join("record.json");
    std::fs::write(&path, data).expect("write the input");
    let _ = load_record::<sandbox::record::SandboxRecord>(&path, sandbox::record::RECORD_VERSION);
    let _ =
        load_record::<container::record::ContainerRecord>(&path, container::record::RECORD_VERSION);
    let _ = load_record::<image::store::ImageRecord>(&path, image::store::IMAGE_RECORD_VERSION);
});
