//! Object ids: 64 lowercase hex characters from the OS random source.

/// A fresh random id (256 bits, hex).
pub fn new_id() -> String {
    let mut bytes = [0u8; 32];
    // getrandom only fails when the OS has no entropy source at all; fall back to time+pid mixing
    // through sha256 so an id is still unique in practice.
    if getrandom::getrandom(&mut bytes).is_err() {
        use sha2::Digest;
        let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
        bytes.copy_from_slice(&sha2::Sha256::digest(seed.as_bytes()));
    }
    hex::encode(bytes)
}

/// True for a full id as [`new_id`] makes them.
pub fn is_full_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_distinct() {
        let a = new_id();
        let b = new_id();
        assert!(is_full_id(&a) && is_full_id(&b));
        assert_ne!(a, b);
        assert!(!is_full_id("abc"));
        assert!(!is_full_id(&a.to_uppercase()));
    }
}
