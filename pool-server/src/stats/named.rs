//! Named entries (workers, accounts) each behind a lock of their own: a session touches only
//! its own entries (and the pool's), and a walk over every entry (an API page, a metrics
//! scrape) holds the map only long enough to copy the handles, never across the whole walk.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

pub(super) struct Named<T> {
    map: RwLock<HashMap<String, Arc<Mutex<T>>>>,
}

impl<T> Default for Named<T> {
    fn default() -> Self {
        Named {
            map: RwLock::new(HashMap::new()),
        }
    }
}

impl<T: Default> Named<T> {
    pub(super) fn get(&self, name: &str) -> Option<Arc<Mutex<T>>> {
        self.map.read().get(name).cloned()
    }

    /// The entry for `name`, made when new.
    pub(super) fn entry(&self, name: &str) -> Arc<Mutex<T>> {
        if let Some(e) = self.get(name) {
            return e;
        }
        self.map.write().entry(name.to_owned()).or_default().clone()
    }

    /// Handles to every entry, sorted by name.
    pub(super) fn all(&self) -> Vec<(String, Arc<Mutex<T>>)> {
        let mut v: Vec<_> = self
            .map
            .read()
            .iter()
            .map(|(n, e)| (n.clone(), e.clone()))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Forget the entries `gone` says so of; their names.
    pub(super) fn remove_where(&self, gone: impl Fn(&T) -> bool) -> Vec<String> {
        let mut map = self.map.write();
        let names: Vec<String> = map
            .iter()
            .filter(|(_, e)| gone(&e.lock()))
            .map(|(n, _)| n.clone())
            .collect();
        for n in &names {
            map.remove(n);
        }
        names
    }
}
