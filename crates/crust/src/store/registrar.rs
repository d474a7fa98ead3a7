//! The name registrar: one namespace of names for sandboxes and containers, each held by one id.

use std::collections::HashMap;
use std::sync::Mutex;

/// A name is already held; carries the holder's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTaken {
    pub holder: String,
}

/// Maps names to the ids that hold them.
#[derive(Debug, Default)]
pub struct Registrar {
    names: Mutex<HashMap<String, String>>,
}

impl Registrar {
    /// Reserves `name` for `id`; re-reserving for the same id is fine.
    pub fn reserve(&self, name: &str, id: &str) -> Result<(), NameTaken> {
        let mut names = self.lock();
        match names.get(name) {
            Some(holder) if holder != id => Err(NameTaken {
                holder: holder.clone(),
            }),
            _ => {
                names.insert(name.to_string(), id.to_string());
                Ok(())
            }
        }
    }

    /// Releases `name` if `id` holds it.
    pub fn release(&self, name: &str, id: &str) {
        let mut names = self.lock();
        if names.get(name).is_some_and(|h| h == id) {
            names.remove(name);
        }
    }

    /// The id holding `name`.
    pub fn holder(&self, name: &str) -> Option<String> {
        self.lock().get(name).cloned()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.names.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserve_release() {
        let r = Registrar::default();
        r.reserve("n", "a").unwrap();
        r.reserve("n", "a").unwrap();
        assert_eq!(r.reserve("n", "b").unwrap_err().holder, "a");
        r.release("n", "b");
        assert_eq!(r.holder("n").as_deref(), Some("a"));
        r.release("n", "a");
        r.reserve("n", "b").unwrap();
    }
}
