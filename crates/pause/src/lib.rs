//! The built-in pause binary, statically linked, as bytes.
//!
//! crustd writes it as `/pause` into the rootfs of the built-in sandbox image, so pods run without
//! any registry. Behaviour: reaps children, exits 0 on SIGTERM/SIGINT (see `pause.c`).

/// The static pause executable.
pub const PAUSE_BINARY: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/pause"));

#[cfg(test)]
mod tests {
    use super::PAUSE_BINARY;

    #[test]
    fn is_a_static_elf_executable() {
        assert_eq!(&PAUSE_BINARY[..4], b"\x7fELF");
        // No PT_INTERP program header means no dynamic loader is needed.
        let needle = b"/lib64/ld-linux";
        assert!(!PAUSE_BINARY.windows(needle.len()).any(|w| w == needle));
    }
}
