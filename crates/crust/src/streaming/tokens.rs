//! Single-use tokens for streaming requests: Exec/Attach/PortForward store the validated request
//! under a random 256-bit token and return a URL naming it; the streaming server takes it out
//! once. Unused tokens expire after their TTL (`[streaming] token_ttl`, 1m by default); at most [`MAX_IN_FLIGHT`] wait at once (the
//! oldest is dropped for a new one, as kubelet's cache does).

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

use base64::Engine as _;

/// The most tokens waiting at once.
pub const MAX_IN_FLIGHT: usize = 1000;

/// Tokens to requests.
#[derive(Debug)]
pub struct Tokens<T> {
    ttl: Duration,
    map: Mutex<HashMap<String, (T, Instant)>>,
}

impl<T> Tokens<T> {
    pub fn new(ttl: Duration) -> Tokens<T> {
        Tokens {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// Stores `request` under a fresh token and returns the token.
    pub fn insert(&self, request: T) -> Result<String, getrandom::Error> {
        let mut raw = [0u8; 32];
        getrandom::getrandom(&mut raw)?;
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, (_, at)| now.duration_since(*at) < self.ttl);
        if map.len() >= MAX_IN_FLIGHT {
            if let Some(oldest) = map
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                map.remove(&oldest);
            }
        }
        map.insert(token.clone(), (request, now));
        Ok(token)
    }

    /// Takes the request of `token` out (once); `None` if unknown, used or expired.
    pub fn take(&self, token: &str) -> Option<T> {
        let mut map = self.map.lock().unwrap_or_else(|p| p.into_inner());
        let (request, at) = map.remove(token)?;
        (at.elapsed() < self.ttl).then_some(request)
    }

    /// Tokens waiting now.
    pub fn len(&self) -> usize {
        self.map.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn single_use_expiring_and_bounded() {
        let t = Tokens::new(Duration::from_millis(50));
        let a = t.insert(1).unwrap();
        assert!(a.len() >= 43, "256 bits");
        assert_ne!(a, t.insert(2).unwrap());
        assert_eq!(t.take(&a), Some(1));
        assert_eq!(t.take(&a), None, "single use");
        let b = t.insert(3).unwrap();
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(t.take(&b), None, "expired");
        let t = Tokens::new(Duration::from_secs(60));
        let first = t.insert(0).unwrap();
        for i in 0..MAX_IN_FLIGHT {
            t.insert(i + 1).unwrap();
        }
        assert_eq!(t.len(), MAX_IN_FLIGHT);
        assert_eq!(t.take(&first), None, "the oldest made room");
    }
}
