//! Where the library, the files and the search index meet: keeps `project/cache/index` in line
//! with the tree, and answers searches with current file objects.
//!
//! The index is derived data. Changes made through the library arrive as [`Change`]s, are
//! merged for a short window and applied in one commit, so a write is searchable well within a
//! second. At start a reconcile compares one walk of the tree (size, mtime and the meta file's
//! mtime of every file) with what the index remembers, and re-reads only what differs; a fresh
//! or rebuilt index therefore fills itself while the server answers. This module never writes
//! files or meta itself: stale meta is refreshed through the library.

use std::collections::{BTreeSet, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use crate::index::{DocInput, IndexError, Opened, SearchIndex, SearchQuery, SearchResult, Stamp};
use crate::library::{mtime_secs, Change, Entry, Indexable, Library, LibraryError, Protection};
use crate::progress::{Progress, Silent};
use crate::storage::paths::MediaPath;
use crate::watcher::Observed;

/// How long changes are gathered before they are applied in one commit.
const BATCH_WINDOW: Duration = Duration::from_millis(150);
/// Most changes applied in one commit.
const MAX_BATCH: usize = 5_000;
/// Files changed by hand that are read (hashed, meta written) at the same time.
const HAND_CONCURRENCY: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum IndexerError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error(transparent)]
    Library(#[from] LibraryError),
    #[error("indexing task failed: {0}")]
    Join(#[from] tokio::task::JoinError),
}

/// How far the start-up reconcile got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReconcileState {
    Running,
    Done {
        files: usize,
        reindexed: usize,
        removed: usize,
        millis: u64,
    },
    Failed(String),
}

/// What a reconcile found and did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub files: usize,
    pub reindexed: usize,
    pub removed: usize,
}

/// A cheap handle shared by the server's workers.
#[derive(Clone)]
pub struct Indexer {
    library: Library,
    index: SearchIndex,
    state: Arc<Mutex<ReconcileState>>,
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    following: Arc<Mutex<Option<tokio::task::JoinHandle<()>>>>,
}

impl Indexer {
    /// Opens (or rebuilds) the index under the project's cache folder.
    pub fn open(library: Library) -> Result<Indexer, IndexerError> {
        let dir = library.layout().cache.join("index");
        let (index, opened) = SearchIndex::open(&dir, library.protection().fingerprint())?;
        match opened {
            Opened::Existing => tracing::debug!(dir = %dir.display(), "search index opened"),
            Opened::Created => {
                tracing::info!("search index created; it fills during the reconcile")
            }
            Opened::Rebuilt { reason } => {
                tracing::warn!(%reason, "search index unusable; rebuilding it from files and meta")
            }
        }
        Ok(Indexer {
            library,
            index,
            state: Arc::new(Mutex::new(ReconcileState::Running)),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
            following: Arc::default(),
        })
    }

    pub fn index(&self) -> &SearchIndex {
        &self.index
    }

    pub fn reconcile_state(&self) -> ReconcileState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Follows the library's changes and runs the start-up reconcile, both in the background.
    pub fn start(&self) {
        if let Some(rx) = self.library.subscribe() {
            let task = tokio::spawn(self.clone().follow(rx));
            *self.following.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        }
        let this = self.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let state = match this.reconcile().await {
                Ok(r) => {
                    let millis = started.elapsed().as_millis() as u64;
                    tracing::info!(
                        files = r.files,
                        reindexed = r.reindexed,
                        removed = r.removed,
                        millis,
                        "start-up reconcile done"
                    );
                    ReconcileState::Done {
                        files: r.files,
                        reindexed: r.reindexed,
                        removed: r.removed,
                        millis,
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "start-up reconcile failed");
                    ReconcileState::Failed(e.to_string())
                }
            };
            // Lookups by hash wait for the scan; never leave them waiting.
            this.library.set_scanned();
            *this.state.lock().unwrap_or_else(|e| e.into_inner()) = state;
        });
    }

    /// Applies what is pending and stops following changes, so the index is closed (and its
    /// lock released) once the server's handles are gone.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let task = self
            .following
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    /// Applies changes as they come, merged over a short window.
    async fn follow(self, mut rx: UnboundedReceiver<Change>) {
        let mut stop = self.stop.subscribe();
        loop {
            let first = tokio::select! {
                change = rx.recv() => change,
                _ = async { drop(stop.wait_for(|s| *s).await) } => {
                    rx.close();
                    rx.recv().await
                }
            };
            let Some(first) = first else { break };
            let mut batch = BTreeSet::from([first]);
            let deadline = tokio::time::Instant::now() + BATCH_WINDOW;
            while batch.len() < MAX_BATCH {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(change)) => {
                        batch.insert(change);
                    }
                    Ok(None) | Err(_) => break,
                }
            }
            // Once stopping, drain what is left without waiting for more.
            if *stop.borrow() {
                while let Ok(change) = rx.try_recv() {
                    batch.insert(change);
                }
            }
            if let Err(e) = self.apply(batch.into_iter().collect()).await {
                tracing::error!(error = %e, "could not update the search index");
            }
        }
    }

    /// Acts on what the watcher observes, expires orphaned meta every second and runs the
    /// periodic reconcile. `retry` feeds files that were still being written back in later.
    pub fn follow_hand(
        &self,
        rx: UnboundedReceiver<Vec<Observed>>,
        retry: UnboundedSender<Vec<Observed>>,
    ) {
        tokio::spawn(self.clone().hand_loop(rx, retry));
    }

    async fn hand_loop(
        self,
        mut rx: UnboundedReceiver<Vec<Observed>>,
        retry: UnboundedSender<Vec<Observed>>,
    ) {
        let watch = &self.library.config().watch;
        let quiet = Duration::from_millis(watch.quiet_ms);
        let period = Duration::from_secs(watch.reconcile_interval_s.max(1));
        let periodic = watch.reconcile_interval_s > 0;
        let mut expire = tokio::time::interval(Duration::from_secs(1));
        let mut rescan = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut stop = self.stop.subscribe();
        loop {
            tokio::select! {
                batch = rx.recv() => match batch {
                    Some(batch) => self.on_observed(batch, quiet, &retry).await,
                    None => break,
                },
                _ = expire.tick() => {
                    let library = self.library.clone();
                    match tokio::task::spawn_blocking(move || library.expire_orphans()).await {
                        Ok(Err(e)) => tracing::warn!(error = %e, "could not remove orphaned meta"),
                        Err(e) => tracing::warn!(error = %e, "orphan check failed"),
                        Ok(Ok(_)) => {}
                    }
                }
                _ = rescan.tick(), if periodic => self.rescan("periodic").await,
                _ = async { drop(stop.wait_for(|s| *s).await) } => break,
            }
        }
    }

    async fn rescan(&self, why: &str) {
        match self.reconcile().await {
            Ok(r) => tracing::info!(
                why,
                files = r.files,
                reindexed = r.reindexed,
                "reconcile done"
            ),
            Err(e) => tracing::error!(why, error = %e, "reconcile failed"),
        }
    }

    /// Applies one batch of observations in order; runs of changed files go concurrently.
    async fn on_observed(
        &self,
        batch: Vec<Observed>,
        quiet: Duration,
        retry: &UnboundedSender<Vec<Observed>>,
    ) {
        if batch.contains(&Observed::Rescan) {
            return self.rescan("events were lost").await;
        }
        let mut changed: Vec<MediaPath> = Vec::new();
        for o in batch {
            match o {
                Observed::Changed(p) => {
                    if !changed.contains(&p) {
                        changed.push(p)
                    }
                }
                other => {
                    self.changed_files(std::mem::take(&mut changed), quiet, retry)
                        .await;
                    let lib = &self.library;
                    let (what, result) = match &other {
                        Observed::Removed(p) => (p, lib.hand_removed(p).await),
                        Observed::Renamed { from, to } => (to, lib.hand_renamed(from, to).await),
                        Observed::MetaChanged(p) => (p, lib.hand_meta_changed(p).await),
                        Observed::MetaRemoved(p) => (p, lib.hand_meta_removed(p).await),
                        Observed::Changed(_) | Observed::Rescan => continue,
                    };
                    if let Err(e) = result {
                        tracing::warn!(path = %what, error = %e, "could not follow a change made by hand");
                    }
                }
            }
        }
        self.changed_files(changed, quiet, retry).await;
    }

    /// Reads files that appeared or changed, a few at a time; one written to within the quiet
    /// period is still being written and is looked at again later, never hashed as final.
    async fn changed_files(
        &self,
        paths: Vec<MediaPath>,
        quiet: Duration,
        retry: &UnboundedSender<Vec<Observed>>,
    ) {
        use futures_util::StreamExt;
        if paths.is_empty() {
            return;
        }
        let lib = self.library.clone();
        let (ready, busy) = tokio::task::spawn_blocking(move || {
            let now = std::time::SystemTime::now();
            let settled =
                |t: std::time::SystemTime| now.duration_since(t).is_ok_and(|age| age >= quiet);
            let (mut ready, mut busy) = (Vec::new(), Vec::new());
            for p in paths {
                let md = lib
                    .layout()
                    .file(&p)
                    .ok()
                    .and_then(|f| std::fs::symlink_metadata(f).ok());
                match md {
                    // A folder that appeared: each file in it is looked at like a dropped one
                    // (and indexed as it gets its meta).
                    Some(md) if md.is_dir() => {
                        for f in lib.walk_stamped(&p).unwrap_or_default() {
                            let age = std::time::Duration::from_secs_f64(f.modified_on.max(0.0));
                            match std::time::UNIX_EPOCH.checked_add(age) {
                                Some(t) if !settled(t) => busy.push(f.path),
                                _ => ready.push(f.path),
                            }
                        }
                    }
                    Some(md) if md.is_file() && !md.modified().is_ok_and(settled) => busy.push(p),
                    _ => ready.push(p),
                }
            }
            (ready, busy)
        })
        .await
        .unwrap_or_default();
        if !busy.is_empty() {
            let retry = retry.clone();
            tokio::spawn(async move {
                tokio::time::sleep(quiet).await;
                let _ = retry.send(busy.into_iter().map(Observed::Changed).collect());
            });
        }
        futures_util::stream::iter(ready)
            .for_each_concurrent(HAND_CONCURRENCY, |p| async move {
                if let Err(e) = self.library.hand_changed(&p).await {
                    tracing::warn!(path = %p, error = %e, "could not read a file changed by hand");
                }
            })
            .await;
    }

    /// Brings the index in line with the tree; files whose size, mtime and meta mtime match
    /// what was indexed are neither read nor re-hashed.
    pub async fn reconcile(&self) -> Result<ReconcileReport, IndexerError> {
        self.reconcile_with(&Silent).await
    }

    /// [`Indexer::reconcile`], telling `progress` how many files were (re)indexed.
    pub async fn reconcile_with(
        &self,
        progress: &dyn Progress,
    ) -> Result<ReconcileReport, IndexerError> {
        let this = self.clone();
        let (todo, files, removed, orphans) = tokio::task::spawn_blocking(move || {
            let mut known = this.index.snapshot()?;
            let walked = this.library.walk_stamped(&MediaPath::root())?;
            let files = walked.len();
            // Meta without a file: held as orphans before any new file is read, so a file
            // moved while the server was down takes its meta back.
            let present: HashSet<&MediaPath> = walked.iter().map(|f| &f.path).collect();
            let orphans: Vec<MediaPath> = this
                .library
                .meta_files_below(&MediaPath::root())?
                .into_iter()
                .filter(|p| !present.contains(p))
                .collect();
            let mut todo = Vec::new();
            for f in walked {
                let indexed = known.remove(f.path.as_str());
                let unchanged = indexed.as_ref().is_some_and(|ix| {
                    f.meta_modified.is_some_and(|mm| {
                        ix.stamp
                            == Stamp {
                                filesize: f.size,
                                modified_on: f.modified_on,
                                meta_modified: mm,
                            }
                    })
                });
                match indexed {
                    Some(ix) if unchanged => {
                        this.library.remember_hash(&f.path, ix.hash.as_deref())
                    }
                    _ => todo.push(Change::File(f.path)),
                }
            }
            // What is left was indexed but is no longer on disk.
            let removed = known.len();
            for path in known.keys() {
                this.index.delete(path)?;
            }
            Ok::<_, IndexerError>((todo, files, removed, orphans))
        })
        .await??;
        for p in orphans {
            self.library.note_orphan(&p).await?;
        }
        let reindexed = todo.len();
        progress.begin(reindexed as u64);
        for chunk in todo.chunks(MAX_BATCH) {
            self.apply(chunk.to_vec()).await?;
            progress.advance(chunk.len() as u64);
        }
        progress.finish();
        self.commit().await?;
        Ok(ReconcileReport {
            files,
            reindexed,
            removed,
        })
    }

    /// Re-reads what changed and commits; meta found stale is refreshed through the library
    /// (which hashes the file) and indexed in a second pass.
    async fn apply(&self, changes: Vec<Change>) -> Result<(), IndexerError> {
        let this = self.clone();
        let stale = tokio::task::spawn_blocking(move || this.apply_blocking(&changes)).await??;
        if stale.is_empty() {
            return Ok(());
        }
        // A few at a time, as for files dropped while running: a tree put in place without
        // meta is mostly waiting on each meta file's fsync, which overlap.
        use futures_util::StreamExt;
        let refreshed: Vec<Change> = futures_util::stream::iter(stale)
            .map(|p| async move {
                match self.library.refresh_if_present(&p).await {
                    Ok(()) => Some(Change::File(p)),
                    Err(e) => {
                        tracing::warn!(path = %p, error = %e, "could not refresh meta");
                        None
                    }
                }
            })
            .buffer_unordered(HAND_CONCURRENCY)
            .filter_map(|done| async move { done })
            .collect()
            .await;
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.apply_blocking(&refreshed)).await??;
        Ok(())
    }

    /// Applies changes to the index and commits; returns the files whose meta must be
    /// refreshed first.
    fn apply_blocking(&self, changes: &[Change]) -> Result<Vec<MediaPath>, IndexerError> {
        let mut files: Vec<MediaPath> = Vec::new();
        let mut seen = HashSet::new();
        for change in changes {
            match change {
                Change::Tree(folder) => {
                    self.index.delete_tree(folder.as_str())?;
                    match self.library.walk_stamped(folder) {
                        Ok(found) => files.extend(found.into_iter().map(|f| f.path)),
                        Err(LibraryError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.into()),
                    }
                }
                Change::File(p) => files.push(p.clone()),
            }
        }
        let mut stale = Vec::new();
        for p in files {
            if !seen.insert(p.clone()) {
                continue;
            }
            match self.library.indexable(&p) {
                Ok(Indexable::Current(entry, meta_modified)) => {
                    self.index
                        .upsert(&doc(&entry, meta_modified, self.library.protection()))?
                }
                Ok(Indexable::Gone) => self.index.delete(p.as_str())?,
                Ok(Indexable::Stale) => stale.push(p),
                Ok(Indexable::Broken) => {}
                Err(e) => tracing::warn!(path = %p, error = %e, "not indexed"),
            }
        }
        self.index.commit()?;
        Ok(stale)
    }

    async fn commit(&self) -> Result<(), IndexerError> {
        let index = self.index.clone();
        tokio::task::spawn_blocking(move || index.commit()).await??;
        Ok(())
    }

    /// Matching files with the meta they were indexed with (at most a commit behind the
    /// disk), and the total number of matches.
    pub async fn search(&self, query: SearchQuery) -> Result<Arc<SearchResult>, IndexerError> {
        let index = self.index.clone();
        Ok(tokio::task::spawn_blocking(move || index.search(&query)).await??)
    }
}

fn doc<'a>(entry: &'a Entry, meta_modified: f64, protection: &Protection) -> DocInput<'a> {
    DocInput {
        protected: entry.is_protected(protection),
        path: entry.path.as_str(),
        meta: &entry.meta,
        stamp: Stamp {
            filesize: entry.size,
            modified_on: mtime_secs(entry.modified),
            meta_modified,
        },
    }
}
