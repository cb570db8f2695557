//! Serialises operations on the same path.
//!
//! File operations take the tree lock shared plus one mutex per path (several paths in sorted
//! order, so two moves can never deadlock); folder operations take the tree lock exclusively,
//! as they touch every path below them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{
    Mutex as AsyncMutex, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, RwLock,
};

use crate::storage::paths::MediaPath;

#[derive(Default)]
pub struct Locks {
    tree: Arc<RwLock<()>>,
    paths: Mutex<HashMap<MediaPath, Weak<AsyncMutex<()>>>>,
}

/// Held while an operation on some files runs.
pub struct FileGuard {
    _paths: Vec<OwnedMutexGuard<()>>,
    _tree: OwnedRwLockReadGuard<()>,
}

/// Held while an operation on a whole folder runs.
pub struct TreeGuard {
    _tree: OwnedRwLockWriteGuard<()>,
}

impl Locks {
    pub async fn files(&self, paths: &[&MediaPath]) -> FileGuard {
        let tree = self.tree.clone().read_owned().await;
        let mut sorted: Vec<&MediaPath> = paths.to_vec();
        sorted.sort();
        sorted.dedup();
        let mutexes: Vec<Arc<AsyncMutex<()>>> = sorted.iter().map(|p| self.mutex(p)).collect();
        let mut guards = Vec::with_capacity(mutexes.len());
        for m in mutexes {
            guards.push(m.lock_owned().await);
        }
        FileGuard {
            _paths: guards,
            _tree: tree,
        }
    }

    pub async fn tree(&self) -> TreeGuard {
        TreeGuard {
            _tree: self.tree.clone().write_owned().await,
        }
    }

    fn mutex(&self, path: &MediaPath) -> Arc<AsyncMutex<()>> {
        let mut map = self.paths.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(m) = map.get(path).and_then(Weak::upgrade) {
            return m;
        }
        if map.len() > 1024 {
            map.retain(|_, w| w.strong_count() > 0);
        }
        let m = Arc::new(AsyncMutex::new(()));
        map.insert(path.clone(), Arc::downgrade(&m));
        m
    }
}
