//! The thumbnail cache on disk: `project/cache/thumbs/<2 hex>/<hash>-<spec>.<ext>`, bounded
//! in bytes, least recently used out first.
//!
//! Owns the cache folder and nothing else. Names are made from the content hash, so a moved
//! file keeps its thumbnails and a changed file can never meet an old one. Each thumbnail is
//! written atomically (temp file in the same folder, fsync, rename), so a crash leaves no
//! empty or torn thumbnail; temp files left by a crash are swept when the cache is opened.
//!
//! Recency lives in memory (one atomic per entry, set on every use, the in-memory copies
//! served by `api::serve` included) and is carried across restarts by the files' mtimes:
//! the index is rebuilt from a directory scan at start with each file's mtime as its last
//! use, and [`Cache::stamp`], run in the background, writes later uses back as mtimes. So
//! the hot path never writes to disk, and a restart loses at most the uses since the last
//! stamp.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::storage::atomic;

/// Eviction goes below the limit by this share of it, so it does not run on every store.
const LOW_WATER_PERCENT: u64 = 90;
/// Uses closer together than this count as one.
const TOUCH_GRAIN_MS: u64 = 1000;
/// Uses closer than this to the recorded mtime are not written back.
const STAMP_SLACK_MS: u64 = 60_000;

/// One cached thumbnail's size and last use.
#[derive(Debug)]
pub struct Usage {
    size: u64,
    /// Last use, milliseconds since the Unix epoch.
    used: AtomicU64,
    /// The last use as recorded in the file's mtime.
    stamped: AtomicU64,
}

impl Usage {
    fn new(size: u64, at: u64) -> Usage {
        Usage {
            size,
            used: AtomicU64::new(at),
            stamped: AtomicU64::new(at),
        }
    }

    /// Marks the thumbnail as just used. Called on every hit, also from memory: within a
    /// second of the last mark it only reads, so hits on several threads do not fight over
    /// the cache line.
    pub fn touch(&self) {
        let now = now_ms();
        if self.used.load(Ordering::Relaxed) + TOUCH_GRAIN_MS < now {
            self.used.fetch_max(now, Ordering::Relaxed);
        }
    }
}

#[derive(Default)]
struct Index {
    /// By path relative to the cache folder.
    entries: HashMap<String, Arc<Usage>>,
    bytes: u64,
}

pub struct Cache {
    dir: PathBuf,
    max_bytes: u64,
    index: Mutex<Index>,
}

fn now_ms() -> u64 {
    ms_of(SystemTime::now())
}

fn ms_of(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn named(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

impl Cache {
    /// Opens (creating) the cache folder, removes temp files a crash left and rebuilds the
    /// index from what is there. Blocking.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Cache> {
        fs::create_dir_all(dir).map_err(|e| named(e, "creating", dir))?;
        let swept = atomic::sweep_stale(dir);
        if swept > 0 {
            tracing::info!(
                count = swept,
                "removed thumbnail temp files left by a crash"
            );
        }
        let mut index = Index::default();
        for entry in walkdir::WalkDir::new(dir).min_depth(1).follow_links(false) {
            let entry = entry.map_err(io::Error::other)?;
            if !entry.file_type().is_file() {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(dir) else {
                continue;
            };
            let Some(rel) = rel.to_str() else { continue };
            let md = entry.metadata().map_err(io::Error::other)?;
            let used = md.modified().map_or(0, ms_of);
            index.bytes += md.len();
            index
                .entries
                .insert(rel.to_string(), Arc::new(Usage::new(md.len(), used)));
        }
        let cache = Cache {
            dir: dir.to_path_buf(),
            max_bytes,
            index: Mutex::new(index),
        };
        // A lowered limit takes effect at once.
        let victims = cache.victims(&mut cache.lock());
        cache.remove_files(&victims);
        Ok(cache)
    }

    fn lock(&self) -> MutexGuard<'_, Index> {
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The relative path of a cache name (`<hash>-<spec>.<ext>`).
    pub fn relative(name: &str) -> String {
        format!("{}/{name}", name.get(..2).unwrap_or("__"))
    }

    pub fn path_of(&self, rel: &str) -> PathBuf {
        self.dir.join(rel)
    }

    /// The entry of a cached thumbnail, if the index has one.
    pub fn lookup(&self, rel: &str) -> Option<Arc<Usage>> {
        self.lock().entries.get(rel).cloned()
    }

    /// Drops an entry whose file turned out to be gone.
    pub fn forget(&self, rel: &str) {
        let mut index = self.lock();
        if let Some(old) = index.entries.remove(rel) {
            index.bytes -= old.size;
        }
    }

    /// Writes a thumbnail atomically and evicts the least recently used ones when the cache
    /// is over its limit. A thumbnail larger than the whole cache is not kept. Blocking.
    pub fn store(&self, rel: &str, bytes: &[u8]) -> io::Result<Option<Arc<Usage>>> {
        let size = bytes.len() as u64;
        if size > self.max_bytes {
            return Ok(None);
        }
        atomic::write(&self.path_of(rel), bytes)?;
        let usage = Arc::new(Usage::new(size, now_ms()));
        let victims = {
            let mut index = self.lock();
            if let Some(old) = index.entries.insert(rel.to_string(), usage.clone()) {
                index.bytes -= old.size;
            }
            index.bytes += size;
            self.victims(&mut index)
        };
        self.remove_files(&victims);
        Ok(Some(usage))
    }

    /// Takes the least recently used entries out of the index until it is below the low
    /// water mark, when it is over the limit; returns their paths.
    fn victims(&self, index: &mut Index) -> Vec<String> {
        if index.bytes <= self.max_bytes {
            return Vec::new();
        }
        let low = self.max_bytes / 100 * LOW_WATER_PERCENT;
        let mut by_age: Vec<(u64, String)> = index
            .entries
            .iter()
            .map(|(rel, u)| (u.used.load(Ordering::Relaxed), rel.clone()))
            .collect();
        by_age.sort_unstable();
        let mut out = Vec::new();
        for (_, rel) in by_age {
            if index.bytes <= low {
                break;
            }
            if let Some(old) = index.entries.remove(&rel) {
                index.bytes -= old.size;
                out.push(rel);
            }
        }
        out
    }

    fn remove_files(&self, rels: &[String]) {
        for rel in rels {
            let p = self.path_of(rel);
            if let Err(e) = fs::remove_file(&p) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(path = %p.display(), error = %e, "cannot evict a thumbnail");
                }
            }
        }
        if !rels.is_empty() {
            tracing::debug!(count = rels.len(), "evicted least recently used thumbnails");
        }
    }

    /// Writes uses newer than the recorded mtimes back to the files, so the order survives a
    /// restart; returns how many were written. Blocking.
    pub fn stamp(&self) -> usize {
        let due: Vec<(String, Arc<Usage>)> = self
            .lock()
            .entries
            .iter()
            .filter(|(_, u)| {
                u.used.load(Ordering::Relaxed) > u.stamped.load(Ordering::Relaxed) + STAMP_SLACK_MS
            })
            .map(|(rel, u)| (rel.clone(), u.clone()))
            .collect();
        let mut done = 0;
        for (rel, usage) in due {
            let used = usage.used.load(Ordering::Relaxed);
            let at = UNIX_EPOCH + Duration::from_millis(used);
            if File::open(self.path_of(&rel))
                .and_then(|f| f.set_modified(at))
                .is_ok()
            {
                usage.stamped.store(used, Ordering::Relaxed);
                done += 1;
            }
        }
        done
    }

    /// How many thumbnails are cached, and their bytes.
    pub fn totals(&self) -> (usize, u64) {
        let index = self.lock();
        (index.entries.len(), index.bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_map(Result::ok)
            .filter(|e| e.file_type().is_file())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        out.sort();
        out
    }

    fn age(cache: &Cache, rel: &str, ms_ago: u64) {
        let u = cache.lookup(rel).unwrap();
        u.used.store(now_ms() - ms_ago, Ordering::Relaxed);
    }

    #[test]
    fn the_least_recently_used_go_first_when_the_cache_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        for (name, ago) in [("aa-1.png", 3000), ("bb-1.png", 2000), ("cc-1.png", 1000)] {
            let rel = Cache::relative(name);
            cache.store(&rel, &[0u8; 300]).unwrap();
            age(&cache, &rel, ago);
        }
        // The oldest is used again, so the next oldest goes.
        cache.lookup(&Cache::relative("aa-1.png")).unwrap().touch();
        cache
            .store(&Cache::relative("dd-1.png"), &[0u8; 300])
            .unwrap();
        assert_eq!(names(dir.path()), ["aa-1.png", "cc-1.png", "dd-1.png"]);
        assert_eq!(cache.totals(), (3, 900));
    }

    #[test]
    fn the_order_survives_a_restart_through_the_stamped_mtimes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = Cache::open(dir.path(), 1000).unwrap();
            for name in ["aa-1.png", "bb-1.png", "cc-1.png"] {
                cache.store(&Cache::relative(name), &[0u8; 300]).unwrap();
            }
            for (name, ago) in [("aa-1.png", 0), ("bb-1.png", 9_000_000), ("cc-1.png", 0)] {
                let rel = Cache::relative(name);
                let u = cache.lookup(&rel).unwrap();
                u.stamped.store(0, Ordering::Relaxed);
                u.used.store(now_ms() - ago, Ordering::Relaxed);
            }
            assert_eq!(cache.stamp(), 3);
        }
        let cache = Cache::open(dir.path(), 1000).unwrap();
        assert_eq!(cache.totals(), (3, 900));
        cache
            .store(&Cache::relative("dd-1.png"), &[0u8; 300])
            .unwrap();
        assert_eq!(names(dir.path()), ["aa-1.png", "cc-1.png", "dd-1.png"]);
    }

    #[test]
    fn opening_sweeps_temp_files_and_applies_a_lowered_limit() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir_all(dir.path().join("aa")).unwrap();
        fs::write(
            dir.path()
                .join("aa")
                .join(format!("{}x", atomic::TEMP_PREFIX)),
            b"torn",
        )
        .unwrap();
        fs::write(dir.path().join("aa/aa-1.png"), [0u8; 600]).unwrap();
        fs::write(dir.path().join("aa/aa-2.png"), [0u8; 600]).unwrap();
        let cache = Cache::open(dir.path(), 1000).unwrap();
        assert_eq!(cache.totals(), (1, 600));
        assert_eq!(names(dir.path()).len(), 1);
    }

    #[test]
    fn a_thumbnail_larger_than_the_cache_is_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path(), 100).unwrap();
        assert!(cache.store("aa/aa-1.png", &[0u8; 101]).unwrap().is_none());
        assert_eq!(cache.totals(), (0, 0));
    }
}
