//! Manifests, indexes and image configs from arbitrary bytes under every media type crust
//! accepts, and platform selection from whatever index parses: never a panic.
#![no_main]

use crust::image::manifest::{self, Document};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for media_type in [
        manifest::OCI_MANIFEST,
        manifest::OCI_INDEX,
        manifest::DOCKER_MANIFEST,
        manifest::DOCKER_LIST,
        "",
    ] {
        if let Ok(Document::Index(index)) = manifest::parse(data, media_type) {
            let _ = manifest::select(&index, &manifest::host_platform());
        }
    }
    for layers in [0, 1, 3] {
        let _ = manifest::parse_config(data, layers);
    }
});
