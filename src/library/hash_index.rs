//! Which paths hold which content: the in-memory map behind fetch-by-hash.
//!
//! Derived from the meta files at start and kept current by every library operation; never
//! the only copy of anything.

use std::collections::{BTreeSet, HashMap};

use crate::storage::paths::MediaPath;

#[derive(Default)]
pub struct HashIndex {
    by_hash: HashMap<String, BTreeSet<MediaPath>>,
    by_path: HashMap<MediaPath, String>,
}

impl HashIndex {
    pub fn set(&mut self, path: &MediaPath, hash: &str) {
        if self.by_path.get(path).map(String::as_str) == Some(hash) {
            return;
        }
        self.remove(path);
        self.by_path.insert(path.clone(), hash.to_string());
        self.by_hash
            .entry(hash.to_string())
            .or_default()
            .insert(path.clone());
    }

    pub fn remove(&mut self, path: &MediaPath) {
        if let Some(old) = self.by_path.remove(path) {
            if let Some(set) = self.by_hash.get_mut(&old) {
                set.remove(path);
                if set.is_empty() {
                    self.by_hash.remove(&old);
                }
            }
        }
    }

    /// Forgets every path at or below `folder`.
    pub fn remove_tree(&mut self, folder: &MediaPath) {
        let gone: Vec<MediaPath> = self
            .by_path
            .keys()
            .filter(|p| p.starts_with(folder))
            .cloned()
            .collect();
        for p in gone {
            self.remove(&p);
        }
    }

    /// Moves every path at or below `from` to the same place below `to`.
    pub fn rebase(&mut self, from: &MediaPath, to: &MediaPath) {
        let moved: Vec<(MediaPath, String)> = self
            .by_path
            .iter()
            .filter(|(p, _)| p.starts_with(from))
            .map(|(p, h)| (p.clone(), h.clone()))
            .collect();
        for (p, h) in moved {
            self.remove(&p);
            if let Some(new) = p.rebase(from, to) {
                self.set(&new, &h);
            }
        }
    }

    pub fn paths(&self, hash: &str) -> Vec<MediaPath> {
        self.by_hash
            .get(hash)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }
}
