//! `WWW-Authenticate` challenges from arbitrary header values: never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(header) = std::str::from_utf8(data) {
        let _ = crust::image::registry::auth::parse_challenge(header);
    }
});
