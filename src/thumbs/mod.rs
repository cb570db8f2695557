//! Thumbnails (`?thumb=`): the service that answers "the thumbnail `spec` of this content".
//!
//! Owns the allowed sizes, the disk cache (`cache`), the single flight per thumbnail, the
//! semaphore that bounds how many are made at once, and the figures shown in `/api/health`.
//! Making one is `generate`'s job, the grammar is `spec`'s. Knows nothing of HTTP: a source
//! that cannot or may not be thumbnailed is the value `None` (the caller serves the original,
//! as PocketBase does), and the only error a client sees is [`ThumbError::Busy`].
//!
//! A request first looks in the cache. On a miss it joins the flight for that (hash, spec)
//! or starts one: a task, independent of the request that started it (a client that goes
//! away does not waste or repeat the work), that waits at most `max_wait_ms` for a permit,
//! reads the source, checks that its bytes still have the expected hash, makes the
//! thumbnail on the blocking pool and stores it. Everyone on the flight gets the outcome.

pub mod cache;
pub mod generate;
pub mod spec;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::{watch, Semaphore};

use crate::config::ThumbsConfig;
use crate::hashing::ContentHash;
use cache::Cache;
pub use cache::Usage;
use generate::GenerateError;
pub use generate::SourceKind;
pub use spec::ThumbSpec;

/// Sources remembered as impossible to thumbnail, at most; the set is cleared when full.
const MAX_REFUSED: usize = 10_000;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ThumbError {
    #[error("all thumbnail workers are busy; try again in a moment")]
    Busy { retry_after: Duration },
    #[error("making a thumbnail failed: {0}")]
    Unexpected(Arc<str>),
}

impl ThumbError {
    pub fn code(&self) -> &'static str {
        match self {
            ThumbError::Busy { .. } => "thumbnail-busy",
            ThumbError::Unexpected(_) => "internal-error",
        }
    }
}

/// The file a thumbnail is made from.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// The content hash the meta records; the bytes read must have it.
    pub hash: ContentHash,
    pub kind: SourceKind,
}

/// A thumbnail ready to send.
#[derive(Debug)]
pub struct Thumb {
    pub bytes: Bytes,
    pub mime: &'static str,
    pub ext: &'static str,
    /// Its cache entry, to mark uses of copies kept elsewhere; `None` when it was not kept.
    pub usage: Option<Arc<Usage>>,
}

/// What one flight ends with, shared by everyone on it.
type Outcome = Result<Option<Arc<Thumb>>, ThumbError>;

/// Figures for `/api/health`.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    /// Thumbnails made since start.
    pub generated: u64,
    /// Requests answered from the disk cache (copies kept in memory by the server are not
    /// counted here).
    pub cache_hits: u64,
    /// Requests answered with the original because the source could not be thumbnailed
    /// (too many pixels, undecodable, changed while read).
    pub refused: u64,
    /// Requests answered 503 because no worker was free in time.
    pub busy: u64,
    /// Thumbnails being made right now.
    pub running: u64,
    pub cache_files: usize,
    pub cache_bytes: u64,
}

#[derive(Default)]
struct Counters {
    generated: AtomicU64,
    cache_hits: AtomicU64,
    refused: AtomicU64,
    busy: AtomicU64,
    running: AtomicU64,
}

/// The thumbnail service; cheap to clone.
#[derive(Clone)]
pub struct Thumbs {
    inner: Arc<Inner>,
}

struct Inner {
    sizes: Vec<ThumbSpec>,
    max_pixels: u64,
    max_wait: Duration,
    cache: Cache,
    permits: Arc<Semaphore>,
    flights: Mutex<HashMap<String, watch::Receiver<Option<Outcome>>>>,
    /// Content that cannot be thumbnailed at any size, so it is not decoded again and again.
    refused: Mutex<HashSet<ContentHash>>,
    counters: Counters,
}

impl Thumbs {
    /// Opens the cache under `dir` (blocking: it scans the folder). The sizes were checked
    /// when the config was loaded; any that do not parse are ignored here.
    pub fn open(dir: &Path, config: &ThumbsConfig) -> std::io::Result<Thumbs> {
        let workers = match config.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        Ok(Thumbs {
            inner: Arc::new(Inner {
                sizes: config.sizes.iter().filter_map(|s| s.parse().ok()).collect(),
                max_pixels: config.max_source_pixels,
                max_wait: Duration::from_millis(config.max_wait_ms),
                cache: Cache::open(dir, config.cache_max_bytes)?,
                permits: Arc::new(Semaphore::new(workers)),
                flights: Mutex::new(HashMap::new()),
                refused: Mutex::new(HashSet::new()),
                counters: Counters::default(),
            }),
        })
    }

    /// The spec a `thumb` query value asks for, when it is valid and one of the configured
    /// sizes; `None` means "serve the original".
    pub fn allowed(&self, value: &str) -> Option<ThumbSpec> {
        let spec: ThumbSpec = value.parse().ok()?;
        self.inner.sizes.contains(&spec).then_some(spec)
    }

    pub fn stats(&self) -> Stats {
        let c = &self.inner.counters;
        let (cache_files, cache_bytes) = self.inner.cache.totals();
        Stats {
            generated: c.generated.load(Ordering::Relaxed),
            cache_hits: c.cache_hits.load(Ordering::Relaxed),
            refused: c.refused.load(Ordering::Relaxed),
            busy: c.busy.load(Ordering::Relaxed),
            running: c.running.load(Ordering::Relaxed),
            cache_files,
            cache_bytes,
        }
    }

    /// Writes recent uses back to the cache files' mtimes (see `cache`). Blocking.
    pub fn stamp(&self) -> usize {
        self.inner.cache.stamp()
    }

    /// The thumbnail `spec` of `source`: from the cache, or made now. `Ok(None)` when the
    /// source cannot be thumbnailed; the original should be served instead.
    pub async fn get(
        &self,
        source: Source,
        spec: ThumbSpec,
    ) -> Result<Option<Arc<Thumb>>, ThumbError> {
        let inner = &self.inner;
        if inner.is_refused(&source.hash) {
            inner.counters.refused.fetch_add(1, Ordering::Relaxed);
            return Ok(None);
        }
        let format = source.kind.output();
        let rel = Cache::relative(&format!("{}-{spec}.{}", source.hash, format.ext()));
        if let Some(thumb) = self.cached(&rel, format).await {
            return Ok(Some(thumb));
        }
        let mut rx = {
            let mut flights = inner.flights.lock().unwrap_or_else(|e| e.into_inner());
            match flights.get(&rel) {
                Some(rx) => rx.clone(),
                None => {
                    let (tx, rx) = watch::channel(None);
                    flights.insert(rel.clone(), rx.clone());
                    let this = self.clone();
                    tokio::spawn(async move {
                        let outcome = this.fly(&rel, source, spec).await;
                        this.inner
                            .flights
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&rel);
                        let _ = tx.send(Some(outcome));
                    });
                    rx
                }
            }
        };
        let outcome = rx
            .wait_for(Option::is_some)
            .await
            .map_err(|_| {
                ThumbError::Unexpected("the thumbnail task ended without an answer".into())
            })?
            .clone();
        outcome.unwrap_or_else(|| Err(ThumbError::Unexpected("no outcome".into())))
    }

    /// A cached thumbnail, read from disk.
    async fn cached(&self, rel: &str, format: generate::OutputFormat) -> Option<Arc<Thumb>> {
        let usage = self.inner.cache.lookup(rel)?;
        let path = self.inner.cache.path_of(rel);
        let read = tokio::task::spawn_blocking(move || std::fs::read(path)).await;
        match read {
            Ok(Ok(bytes)) => {
                usage.touch();
                self.inner
                    .counters
                    .cache_hits
                    .fetch_add(1, Ordering::Relaxed);
                Some(Arc::new(Thumb {
                    bytes: Bytes::from(bytes),
                    mime: format.mime(),
                    ext: format.ext(),
                    usage: Some(usage),
                }))
            }
            // Removed behind our back (by hand, or evicted just now): make it again.
            _ => {
                self.inner.cache.forget(rel);
                None
            }
        }
    }

    /// One flight: waits for a permit, makes the thumbnail and stores it.
    async fn fly(&self, rel: &str, source: Source, spec: ThumbSpec) -> Outcome {
        let inner = &self.inner;
        let format = source.kind.output();
        // A flight that ended between this request's cache miss and its joining would
        // otherwise be flown twice.
        if let Some(thumb) = self.cached(rel, format).await {
            return Ok(Some(thumb));
        }
        let permit =
            match tokio::time::timeout(inner.max_wait, inner.permits.clone().acquire_owned()).await
            {
                Ok(Ok(permit)) => permit,
                _ => {
                    inner.counters.busy.fetch_add(1, Ordering::Relaxed);
                    let secs = inner.max_wait.as_secs().max(1);
                    return Err(ThumbError::Busy {
                        retry_after: Duration::from_secs(secs),
                    });
                }
            };
        inner.counters.running.fetch_add(1, Ordering::Relaxed);
        let this = self.clone();
        let rel_owned = rel.to_string();
        let hash = source.hash;
        let made = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            this.make_and_store(&rel_owned, &source, spec)
        })
        .await;
        inner.counters.running.fetch_sub(1, Ordering::Relaxed);
        match made {
            Ok(Made::Thumb(thumb)) => {
                inner.counters.generated.fetch_add(1, Ordering::Relaxed);
                Ok(Some(thumb))
            }
            Ok(Made::Refused { remember }) => {
                inner.counters.refused.fetch_add(1, Ordering::Relaxed);
                if remember {
                    inner.remember_refused(hash);
                }
                Ok(None)
            }
            Err(e) => Err(ThumbError::Unexpected(e.to_string().into())),
        }
    }

    /// Reads, checks, makes and stores one thumbnail. Blocking.
    fn make_and_store(&self, rel: &str, source: &Source, spec: ThumbSpec) -> Made {
        let bytes = match read_checked(&source.path, &source.hash) {
            Ok(Some(bytes)) => bytes,
            Ok(None) => {
                tracing::info!(path = %source.path.display(), "source changed while it was read for a thumbnail; original served");
                return Made::Refused { remember: false };
            }
            Err(e) => {
                tracing::warn!(path = %source.path.display(), error = %e, "cannot read a thumbnail source; original served");
                return Made::Refused { remember: false };
            }
        };
        let out = match generate::make(&bytes, source.kind, spec, self.inner.max_pixels) {
            Ok(out) => out,
            Err(e) => {
                let level_info = matches!(
                    e,
                    GenerateError::TooManyPixels { .. } | GenerateError::TooMuchMemory { .. }
                );
                if level_info {
                    tracing::info!(path = %source.path.display(), error = %e, "no thumbnail; original served");
                } else {
                    tracing::warn!(path = %source.path.display(), error = %e, "no thumbnail; original served");
                }
                return Made::Refused { remember: true };
            }
        };
        drop(bytes);
        let format = source.kind.output();
        // A thumbnail that cannot be stored (disk full) is still served.
        let usage = self.inner.cache.store(rel, &out).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot store a thumbnail in the cache");
            None
        });
        Made::Thumb(Arc::new(Thumb {
            bytes: Bytes::from(out),
            mime: format.mime(),
            ext: format.ext(),
            usage,
        }))
    }
}

enum Made {
    Thumb(Arc<Thumb>),
    /// The original is served; `remember` when the content itself is the reason.
    Refused {
        remember: bool,
    },
}

impl Inner {
    fn is_refused(&self, hash: &ContentHash) -> bool {
        self.refused
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(hash)
    }

    fn remember_refused(&self, hash: ContentHash) {
        let mut set = self.refused.lock().unwrap_or_else(|e| e.into_inner());
        if set.len() >= MAX_REFUSED {
            set.clear();
        }
        set.insert(hash);
    }
}

/// The whole file, when its BLAKE3 hash is `expected`; `None` when it is not (it changed
/// after its meta was read, and a thumbnail stored under the old hash would be wrong).
fn read_checked(path: &Path, expected: &ContentHash) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.read_to_end(&mut bytes)?;
    Ok((ContentHash::of(&bytes) == *expected).then_some(bytes))
}
