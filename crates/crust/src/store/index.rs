//! In-memory index of objects by id, with CRI-style lookup: exact id, then unique prefix.

use std::{collections::BTreeMap, sync::Arc, sync::RwLock};

/// Why a lookup found nothing usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LookupError {
    #[error("empty id")]
    Empty,
    #[error("{0:?} not found")]
    NotFound(String),
    #[error("id prefix {prefix:?} is ambiguous: matches {matches}")]
    Ambiguous { prefix: String, matches: String },
}

/// Objects by id, ordered so prefix scans are a range query.
#[derive(Debug)]
pub struct Index<T> {
    items: RwLock<BTreeMap<String, Arc<T>>>,
}

impl<T> Default for Index<T> {
    fn default() -> Self {
        Index {
            items: RwLock::new(BTreeMap::new()),
        }
    }
}

impl<T> Index<T> {
    /// Adds or replaces `id`.
    pub fn insert(&self, id: &str, item: Arc<T>) {
        self.write().insert(id.to_string(), item);
    }

    /// Every item, in id order.
    pub fn values(&self) -> Vec<Arc<T>> {
        self.read().values().cloned().collect()
    }

    /// Removes `id` (exact).
    pub fn remove(&self, id: &str) -> Option<Arc<T>> {
        self.write().remove(id)
    }

    /// Exact id, else the single id starting with `key`.
    pub fn lookup(&self, key: &str) -> Result<Arc<T>, LookupError> {
        if key.is_empty() {
            return Err(LookupError::Empty);
        }
        let items = self.read();
        if let Some(item) = items.get(key) {
            return Ok(item.clone());
        }
        let mut hits = items
            .range(key.to_string()..)
            .take_while(|(k, _)| k.starts_with(key));
        match (hits.next(), hits.next()) {
            (Some((_, item)), None) => Ok(item.clone()),
            (None, _) => Err(LookupError::NotFound(key.to_string())),
            (Some((a, _)), Some((b, _))) => Err(LookupError::Ambiguous {
                prefix: key.to_string(),
                matches: format!("{a}, {b}, ..."),
            }),
        }
    }

    /// A snapshot of all objects.
    pub fn all(&self) -> Vec<Arc<T>> {
        self.read().values().cloned().collect()
    }

    /// Number of objects.
    pub fn len(&self) -> usize {
        self.read().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Arc<T>>> {
        self.items.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Arc<T>>> {
        self.items.write().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_prefix_ambiguous_empty() {
        let idx = Index::default();
        idx.insert("abc1", Arc::new(1));
        idx.insert("abc2", Arc::new(2));
        idx.insert("b", Arc::new(3));
        assert_eq!(*idx.lookup("abc1").unwrap(), 1);
        assert_eq!(*idx.lookup("abc2").unwrap(), 2);
        assert_eq!(*idx.lookup("b").unwrap(), 3);
        assert!(matches!(
            idx.lookup("abc"),
            Err(LookupError::Ambiguous { .. })
        ));
        assert!(matches!(
            idx.lookup("a"),
            Err(LookupError::Ambiguous { .. })
        ));
        assert_eq!(idx.lookup(""), Err(LookupError::Empty));
        assert_eq!(idx.lookup("z"), Err(LookupError::NotFound("z".into())));
        idx.remove("abc1");
        assert_eq!(*idx.lookup("abc").unwrap(), 2);
    }
}
