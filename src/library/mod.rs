//! The media library: files under `uploads/` and their meta, kept consistent.
//!
//! Owns every operation that changes the tree (upload, move, copy, delete, meta edits,
//! folders), the locking that serialises them, and the rule that a file's meta always
//! describes its current content. Knows nothing of HTTP; paths arrive already parsed.

mod files;
mod folders;
mod hand;
mod hash_index;
mod locks;
pub mod names;
mod protection;

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_yaml::Mapping;

pub use files::{Conflict, MetaEdit};
pub use folders::FolderInfo;
pub use hand::Problem;
pub use protection::Protection;

use crate::config::Config;
use crate::exif;
use crate::hashing::hash_file;
use crate::sniff;
use crate::storage::meta::{self, Facts, MetaError};
use crate::storage::paths::{check_name, is_hidden_name, Layout, MediaPath, PathError};
use hash_index::HashIndex;
use locks::Locks;

#[derive(Debug, thiserror::Error)]
pub enum LibraryError {
    #[error(transparent)]
    Path(#[from] PathError),
    #[error("File not found")]
    FileNotFound,
    #[error("Folder not found")]
    FolderNotFound,
    #[error("Field '{0}' not found")]
    FieldNotFound(String),
    #[error("No file has this hash")]
    HashNotFound,
    #[error("File '{0}' already exists")]
    FileExists(String),
    #[error("Folder '{0}' already exists")]
    FolderExists(String),
    #[error("Field '{0}' already exists")]
    FieldExists(String),
    #[error("Folder is not empty (use recursive=true)")]
    FolderNotEmpty,
    #[error("File is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("File type '{0}' is not accepted")]
    TypeNotAccepted(String),
    #[error("Content does not match the extension '.{extension}'{}", found.as_ref().map(|f| format!(" (looks like {f})")).unwrap_or_default())]
    ContentMismatch {
        extension: String,
        found: Option<String>,
    },
    #[error("{1}")]
    BadRequest(&'static str, String),
    #[error("Field '{0}' is set by the server and cannot be edited")]
    SystemField(String),
    #[error("Path is a folder, not a file")]
    NotAFile,
    #[error("Path is not a folder")]
    NotAFolder,
    #[error("The server is not allowed to read this file or folder (permission denied)")]
    Unreadable,
    #[error("The meta would be larger than the limit of {0} bytes")]
    MetaTooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl LibraryError {
    pub fn code(&self) -> &'static str {
        use LibraryError as L;
        match self {
            L::Path(_) => "invalid-path",
            L::FileNotFound => "file-not-found",
            L::FolderNotFound => "folder-not-found",
            L::FieldNotFound(_) => "field-not-found",
            L::HashNotFound => "hash-not-found",
            L::FileExists(_) => "file-exists",
            L::FolderExists(_) => "folder-exists",
            L::FieldExists(_) => "field-exists",
            L::FolderNotEmpty => "folder-not-empty",
            L::TooLarge(_) => "file-too-large",
            L::TypeNotAccepted(_) => "type-not-accepted",
            L::ContentMismatch { .. } => "content-mismatch",
            L::BadRequest(code, _) => code,
            L::SystemField(_) => "system-field",
            L::NotAFile => "not-a-file",
            L::NotAFolder => "not-a-folder",
            L::Unreadable => "unreadable",
            L::MetaTooLarge(_) => "meta-too-large",
            L::Io(_) => "internal-error",
        }
    }
}

pub type Result<T, E = LibraryError> = std::result::Result<T, E>;

/// A file and its meta as they are now.
#[derive(Debug, Clone)]
pub struct Entry {
    pub path: MediaPath,
    pub meta: Mapping,
    pub size: u64,
    pub modified: SystemTime,
    /// The meta file is not valid YAML: `meta` holds the file's facts only.
    pub meta_broken: bool,
}

impl Entry {
    pub fn hash(&self) -> Option<&str> {
        meta::hash_of(&self.meta)
    }

    /// Whether this file needs a credential to be read (by `media.protected` or its meta).
    /// A file whose meta cannot be read is protected: the meta may say so, and serving it
    /// publicly until the YAML is fixed (and to CDNs for a year by hash) cannot be undone.
    pub fn is_protected(&self, protection: &Protection) -> bool {
        self.meta_broken || protection.is_protected(&self.path, &self.meta)
    }

    pub fn mime(&self) -> &str {
        self.meta
            .get("type")
            .and_then(serde_yaml::Value::as_str)
            .unwrap_or("application/octet-stream")
    }
}

/// How a file may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guard {
    /// A credential is needed.
    pub protected: bool,
    /// The file is reached through a symlink: what protects it may change with another
    /// file's meta, so answers are not kept in memory.
    pub linked: bool,
}

/// A change to the tree that derived data (the search index) must follow. Carries only what
/// changed, never a snapshot: the follower re-reads the current state, so changes can be
/// merged and replayed in any order.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Change {
    /// A file (or its meta) was written, moved here or away, or deleted.
    File(MediaPath),
    /// Everything at or below a folder may have changed.
    Tree(MediaPath),
}

/// What the index should hold for one path, read without taking the path's lock.
#[derive(Debug)]
pub enum Indexable {
    /// Meta that describes the file's current content, with the meta file's mtime read
    /// before the meta itself (so a later edit always looks newer).
    Current(Entry, f64),
    /// The file exists but its meta is missing or describes older content: refresh it first.
    Stale,
    /// The meta is not valid YAML: keep whatever was indexed last.
    Broken,
    /// No such file (or not a file).
    Gone,
}

/// What a file's meta says about the file now.
enum MetaState {
    Current(Entry),
    /// Missing, or describing other content.
    Stale,
    /// Not valid YAML.
    Invalid,
    /// Empty and just written: most likely a person's editor between truncating the file
    /// and writing it. Completing it now would replace the file the editor is about to fill.
    Writing,
}

/// How long an empty meta file counts as being written by hand.
const WRITING_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn just_written(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age < WRITING_GRACE)
}

/// A file seen by the stamped walk: its size and mtime, and its meta file's mtime.
#[derive(Debug, Clone, PartialEq)]
pub struct Stamped {
    pub path: MediaPath,
    pub size: u64,
    pub modified_on: f64,
    pub meta_modified: Option<f64>,
}

/// A cheap handle to the library, shared by every worker.
#[derive(Clone)]
pub struct Library {
    inner: Arc<Inner>,
}

struct Inner {
    layout: Layout,
    config: Arc<Config>,
    protection: Protection,
    locks: Locks,
    hashes: RwLock<HashIndex>,
    /// Facts of files whose meta is not valid YAML, by (path, size, mtime).
    broken: Mutex<HashMap<(MediaPath, u64, SystemTime), Facts>>,
    scanned: tokio::sync::watch::Sender<bool>,
    changes: OnceLock<tokio::sync::mpsc::UnboundedSender<Change>>,
    hand: Mutex<hand::HandState>,
}

pub fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A file time as Unix seconds with fraction: the form of `modified_on` and of index stamps.
pub fn mtime_secs(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as f64 + f64::from(d.subsec_nanos()) / 1e9,
        Err(e) => -(e.duration().as_secs_f64()),
    }
}

fn not_found_as(e: io::Error, err: LibraryError) -> LibraryError {
    if e.kind() == io::ErrorKind::NotFound {
        err
    } else {
        LibraryError::Io(e)
    }
}

/// An error met while reading a file or folder: gone is `not_found`, and one the server
/// may not read is [`LibraryError::Unreadable`] (a person's choice, not a server fault).
fn read_error(e: io::Error, not_found: LibraryError) -> LibraryError {
    match e.kind() {
        io::ErrorKind::PermissionDenied => LibraryError::Unreadable,
        _ => not_found_as(e, not_found),
    }
}

impl Library {
    pub fn new(layout: Layout, config: Arc<Config>) -> Library {
        let (scanned, _) = tokio::sync::watch::channel(false);
        Library {
            inner: Arc::new(Inner {
                layout,
                protection: Protection::from_config(&config.media.protected),
                config,
                locks: Locks::default(),
                hashes: RwLock::new(HashIndex::default()),
                broken: Mutex::new(HashMap::new()),
                scanned,
                changes: OnceLock::new(),
                hand: Mutex::default(),
            }),
        }
    }

    pub fn layout(&self) -> &Layout {
        &self.inner.layout
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn protection(&self) -> &Protection {
        &self.inner.protection
    }

    /// Whether reading a file needs a credential: by its own path or meta, or, when it is
    /// reached through a symlink, by the path or meta of the file the link leads to (a link
    /// made by hand must not open a protected file to everyone).
    pub fn protection_of(&self, entry: &Entry) -> Guard {
        let linked = self.link_target(&entry.path);
        // The target answers to the same rule as the file itself, unreadable meta included.
        let protected = entry.is_protected(self.protection())
            || linked
                .as_ref()
                .is_some_and(|target| match self.read_meta(target) {
                    Ok(Ok(Some(m))) => self.protection().is_protected(target, &m),
                    Ok(Ok(None)) => self.protection().path_protected(target),
                    Ok(Err(_)) | Err(_) => true,
                });
        Guard {
            protected,
            linked: linked.is_some(),
        }
    }

    /// The media path a file resolves to when a symlink is on its way; `None` otherwise.
    fn link_target(&self, p: &MediaPath) -> Option<MediaPath> {
        let lexical = self.layout().file(p).ok()?;
        // `uploads` is canonical, so without symlinks the path is already its own canonical form.
        let real = lexical.canonicalize().ok()?;
        (real != lexical)
            .then(|| self.layout().media_path_of(&real))
            .flatten()
    }

    /// Runs filesystem work on the blocking pool.
    async fn blocking<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Library) -> Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || f(&this))
            .await
            .map_err(|e| LibraryError::Io(io::Error::other(e)))?
    }

    /// The stream of changes made through the library. Only the first caller gets it; with
    /// nobody subscribed, changes are not recorded.
    pub fn subscribe(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<Change>> {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        self.inner.changes.set(tx).ok().map(|_| rx)
    }

    /// Tells the subscriber (if any) that something changed.
    pub fn changed(&self, change: Change) {
        if let Some(tx) = self.inner.changes.get() {
            let _ = tx.send(change);
        }
    }

    /// Records a file's hash for lookups by hash and announces the change.
    fn index_set(&self, path: &MediaPath, meta: &Mapping) {
        self.remember_hash(path, meta::hash_of(meta));
        self.changed(Change::File(path.clone()));
    }

    /// Records a file's hash for lookups by hash, without announcing anything.
    pub fn remember_hash(&self, path: &MediaPath, hash: Option<&str>) {
        if let Some(h) = hash {
            self.hashes().set(path, h);
        }
    }

    fn broken(&self) -> MutexGuard<'_, HashMap<(MediaPath, u64, SystemTime), Facts>> {
        self.inner.broken.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn hashes(&self) -> std::sync::RwLockWriteGuard<'_, HashIndex> {
        self.inner.hashes.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A file with meta that describes its current content, refreshed when it does not.
    pub async fn file(&self, p: &MediaPath) -> Result<Entry> {
        let q = p.clone();
        if let Some(entry) = self.blocking(move |lib| lib.read_current(&q)).await? {
            return Ok(entry);
        }
        let _guard = self.inner.locks.files(&[p]).await;
        let q = p.clone();
        self.blocking(move |lib| lib.refresh(&q)).await
    }

    /// Reads a file's meta when it is current; `None` when it must be refreshed.
    fn read_current(&self, p: &MediaPath) -> Result<Option<Entry>> {
        let (path, md) = self.stat_file(p)?;
        match self.meta_state(p, &self.layout().meta_file(p)?, &md)? {
            MetaState::Current(entry) => Ok(Some(entry)),
            MetaState::Stale => Ok(None),
            MetaState::Invalid | MetaState::Writing => {
                let (size, modified) = (md.len(), md.modified()?);
                // Hand-broken meta is never overwritten: serve facts alone until it is fixed,
                // remembering them so a large file is not re-hashed on every request.
                let key = (p.clone(), size, modified);
                let cached = self.broken().get(&key).cloned();
                let facts = match cached {
                    Some(f) => f,
                    None => {
                        let f = self.facts(&path, p, size, modified)?;
                        let mut broken = self.broken();
                        broken.retain(|(q, _, _), _| q != p);
                        broken.insert(key, f.clone());
                        f
                    }
                };
                let mut m = Mapping::new();
                meta::apply_facts(&mut m, &facts);
                Ok(Some(Entry {
                    path: p.clone(),
                    meta: m,
                    size,
                    modified,
                    meta_broken: true,
                }))
            }
        }
    }

    /// Reads a file's meta and says whether it describes the file as `md` found it; a parse
    /// failure is recorded as a problem (and cleared once the meta reads again).
    fn meta_state(
        &self,
        p: &MediaPath,
        meta_path: &Path,
        md: &std::fs::Metadata,
    ) -> Result<MetaState> {
        let (size, modified) = (md.len(), md.modified()?);
        Ok(match read_meta_at(meta_path)? {
            Ok(Some(m)) if meta::is_current(&m, size, mtime_secs(modified)) => {
                self.note_invalid(p, None);
                MetaState::Current(Entry {
                    path: p.clone(),
                    meta: m,
                    size,
                    modified,
                    meta_broken: false,
                })
            }
            Ok(Some(m)) if m.is_empty() && just_written(meta_path) => MetaState::Writing,
            Ok(_) => MetaState::Stale,
            Err(message) => {
                self.note_invalid(p, Some(&message));
                MetaState::Invalid
            }
        })
    }

    /// Re-derives the facts of a file and writes them into its meta (caller holds the lock).
    fn refresh(&self, p: &MediaPath) -> Result<Entry> {
        if let Some(entry) = self.read_current(p)? {
            return Ok(entry);
        }
        let (path, md) = self.stat_file(p)?;
        let facts = self.facts(&path, p, md.len(), md.modified()?)?;
        let meta_path = self.layout().meta_file(p)?;
        let mut m = match meta::read(&meta_path) {
            Ok(Some(m)) => m,
            // No meta: the file may be one that was moved by hand, whose meta is orphaned.
            Ok(None) => self.adopt_orphan(p, &facts.hash)?.unwrap_or_default(),
            Err(_) => Mapping::new(),
        };
        if m.is_empty() {
            m = meta::new_meta(names::split_name(p.name()).0, now_secs(), &facts);
            self.note_fresh(p, &facts.hash, &m);
        } else {
            meta::fill_defaults(&mut m, names::split_name(p.name()).0, now_secs());
            meta::apply_facts(&mut m, &facts);
        }
        meta::write(&meta_path, &m)?;
        self.index_set(p, &m);
        Ok(Entry {
            path: p.clone(),
            meta: m,
            size: facts.filesize,
            modified: md.modified()?,
            meta_broken: false,
        })
    }

    /// Hashes, sniffs and reads EXIF; retries while the file is still changing under it.
    fn facts(&self, path: &Path, p: &MediaPath, size: u64, modified: SystemTime) -> Result<Facts> {
        let (mut size, mut modified) = (size, modified);
        let unreadable = |e| {
            let e = read_error(e, LibraryError::FileNotFound);
            if matches!(e, LibraryError::Unreadable) {
                self.note_refused(Problem {
                    code: "unreadable",
                    path: p.to_string(),
                    message: "the file cannot be read: permission denied".into(),
                });
            }
            e
        };
        for _ in 0..3 {
            let (hash, read) = hash_file(path).map_err(unreadable)?;
            let md = std::fs::metadata(path)?;
            if read == size && md.len() == size && md.modified()? == modified {
                let head = read_head(path).map_err(unreadable)?;
                let ext = names::split_name(p.name()).1.to_ascii_lowercase();
                let mime = sniff::mime_type(&head, &ext);
                let exif = exif::extract(path, &mime);
                self.note_readable(p);
                return Ok(Facts {
                    hash: hash.to_hex(),
                    filesize: size,
                    mime,
                    modified_on: mtime_secs(modified),
                    exif,
                });
            }
            (size, modified) = (md.len(), md.modified()?);
        }
        Err(LibraryError::Io(io::Error::other(format!(
            "{} kept changing while it was hashed",
            p
        ))))
    }

    /// The on-disk path and metadata of an existing regular file.
    fn stat_file(&self, p: &MediaPath) -> Result<(PathBuf, std::fs::Metadata)> {
        if p.is_root() {
            return Err(LibraryError::NotAFile);
        }
        let path = self.layout().file(p)?;
        let md = std::fs::metadata(&path).map_err(|e| read_error(e, LibraryError::FileNotFound))?;
        if md.is_dir() {
            return Err(LibraryError::NotAFile);
        }
        if !md.is_file() {
            return Err(LibraryError::FileNotFound);
        }
        Ok((path, md))
    }

    /// Every file with this content.
    pub async fn by_hash(&self, hash: &str) -> Result<Vec<Entry>> {
        let mut rx = self.inner.scanned.subscribe();
        let _ = rx.wait_for(|done| *done).await;
        let paths = self
            .inner
            .hashes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .paths(hash);
        let mut out = Vec::new();
        for p in paths {
            match self.file(&p).await {
                Ok(e) if e.hash() == Some(hash) => out.push(e),
                Ok(_) | Err(LibraryError::FileNotFound | LibraryError::Unreadable) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// What the index should hold for a path, from a read that takes no lock. A hand-broken
    /// meta file is reported as such and not replaced by facts.
    pub fn indexable(&self, p: &MediaPath) -> Result<Indexable> {
        let (_, md) = match self.stat_file(p) {
            Ok(found) => found,
            Err(LibraryError::FileNotFound | LibraryError::NotAFile) => return Ok(Indexable::Gone),
            Err(e) => return Err(e),
        };
        let meta_path = self.layout().meta_file(p)?;
        let meta_modified = match std::fs::metadata(&meta_path) {
            Ok(m) => mtime_secs(m.modified()?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Indexable::Stale),
            Err(e) => return Err(e.into()),
        };
        Ok(match self.meta_state(p, &meta_path, &md)? {
            MetaState::Current(entry) => {
                self.remember_hash(p, entry.hash());
                Indexable::Current(entry, meta_modified)
            }
            MetaState::Stale => Indexable::Stale,
            MetaState::Invalid | MetaState::Writing => Indexable::Broken,
        })
    }

    /// A file's meta as it is on disk, read through the checked path.
    pub fn read_meta(&self, p: &MediaPath) -> Result<Result<Option<Mapping>, String>> {
        read_meta_at(&self.layout().meta_file(p)?)
    }

    /// Every file at or below `folder` with its size, mtime and its meta file's mtime: one
    /// walk and two `lstat`s per file, for a start-up check that reads nothing else. A walk
    /// of the whole tree also records what it found that cannot be served (see
    /// [`Library::problems`]).
    pub fn walk_stamped(&self, folder: &MediaPath) -> Result<Vec<Stamped>> {
        let root = self.layout().file(folder)?;
        let meta_root = self.layout().meta_folder(&MediaPath::root())?;
        let mut files = Vec::new();
        let mut refused = Vec::new();
        self.walk_visible(
            &root,
            |entry, path| files.push((entry, path)),
            |problem| refused.push(problem),
        );
        if folder.is_root() {
            self.set_refused(refused);
        }
        let mut out = Vec::with_capacity(files.len());
        for (entry, path) in files {
            let Ok(md) = entry.metadata() else { continue };
            let Ok(modified) = md.modified() else {
                continue;
            };
            // Only stat, never read, through this unchecked join: anything unusual here
            // (a symlink, a missing file) just sends the file down the checked slow path.
            let mut meta_path = meta_root.join(path.as_str()).into_os_string();
            meta_path.push(".");
            meta_path.push(crate::storage::paths::META_EXT);
            let meta_modified = std::fs::symlink_metadata(&meta_path)
                .ok()
                .filter(|m| m.file_type().is_file())
                .and_then(|m| m.modified().ok())
                .map(mtime_secs);
            out.push(Stamped {
                path,
                size: md.len(),
                modified_on: mtime_secs(modified),
                meta_modified,
            });
        }
        Ok(out)
    }

    /// Marks the start-up scan as done: lookups by hash stop waiting.
    pub fn set_scanned(&self) {
        self.inner.scanned.send_replace(true);
    }

    /// Media paths of the files at or below `folder`, sorted, hidden names and symlinks skipped.
    fn walk_files(&self, folder: &MediaPath) -> Result<Vec<MediaPath>> {
        let root = self.layout().file(folder)?;
        let mut out = Vec::new();
        self.walk_visible(&root, |_, p| out.push(p), |_| {});
        out.sort();
        Ok(out)
    }

    /// Gives `found` each regular file below `root` a client could name, in walk order.
    /// Hidden names (`.meta`, `.staging`, temp files, partial downloads) are not entered and
    /// symlinks are not followed. What could never be served goes to `refused`: names that
    /// are not UTF-8 or that no path may hold (control characters, backslashes, too long),
    /// folders the server may not read, links that loop, lead nowhere or lead out of the
    /// tree, and special files (FIFOs, sockets, devices).
    fn walk_visible(
        &self,
        root: &Path,
        mut found: impl FnMut(walkdir::DirEntry, MediaPath),
        mut refused: impl FnMut(Problem),
    ) {
        let mut problem = |code, path: &Path, message| {
            refused(Problem {
                code,
                path: self.shown_path(path),
                message,
            })
        };
        let mut walk = walkdir::WalkDir::new(root).follow_links(false).into_iter();
        while let Some(next) = walk.next() {
            let entry = match next {
                Ok(entry) => entry,
                Err(e) => {
                    let message = match e.io_error() {
                        Some(io) => format!("the folder cannot be read: {io}"),
                        None => e.to_string(),
                    };
                    problem("unreadable", e.path().unwrap_or(root), message);
                    continue;
                }
            };
            let kind = entry.file_type();
            if entry.depth() > 0 {
                let name = entry.file_name();
                let why = match name.to_str() {
                    None => Some(format!("the name is not valid UTF-8: {name:?}")),
                    Some(_) if is_hidden_name(name) => {
                        if kind.is_dir() {
                            walk.skip_current_dir();
                        }
                        continue;
                    }
                    Some(n) => check_name(n).err().map(|e| e.to_string()),
                };
                if let Some(message) = why {
                    if kind.is_dir() {
                        walk.skip_current_dir();
                    }
                    problem("unservable-name", entry.path(), message);
                    continue;
                }
            }
            if kind.is_file() {
                if let Some(p) = self.layout().media_path_of(entry.path()) {
                    found(entry, p);
                }
            } else if kind.is_symlink() {
                if let Some(message) = self.link_refusal(entry.path()) {
                    problem("symlink-refused", entry.path(), message);
                }
            } else if !kind.is_dir() {
                let message = "not a regular file (a FIFO, socket or device)".to_string();
                problem("not-a-file", entry.path(), message);
            }
        }
    }

    /// Why a symlink in the tree can never be followed, if it cannot.
    fn link_refusal(&self, link: &Path) -> Option<String> {
        let layout = self.layout();
        match std::fs::canonicalize(link) {
            Err(e) => Some(format!("the link leads nowhere: {e}")),
            Ok(target)
                if !target.starts_with(&layout.uploads)
                    || target.starts_with(&layout.meta)
                    || target.starts_with(&layout.staging) =>
            {
                Some("the link leads out of the media tree".into())
            }
            Ok(_) => None,
        }
    }

    /// A path under `uploads/` as a person reads it (never the server's own path); bytes that
    /// are not UTF-8 are shown as U+FFFD.
    fn shown_path(&self, path: &Path) -> String {
        path.strip_prefix(&self.layout().uploads)
            .unwrap_or(path)
            .to_string_lossy()
            .into_owned()
    }

    /// The files in a folder (or below it when `recursive`), paged over sorted paths.
    pub async fn list(
        &self,
        folder: &MediaPath,
        recursive: bool,
        offset: usize,
        limit: Option<usize>,
    ) -> Result<Vec<Entry>> {
        let f = folder.clone();
        let page = self
            .blocking(move |lib| {
                lib.require_folder(&f)?;
                let all = if recursive {
                    lib.walk_files(&f)?
                } else {
                    lib.children(&f)?.0
                };
                let page: Vec<(MediaPath, Option<Entry>)> = all
                    .into_iter()
                    .skip(offset)
                    .take(limit.unwrap_or(usize::MAX))
                    .map(|p| {
                        let current = lib.read_current(&p).ok().flatten();
                        (p, current)
                    })
                    .collect();
                Ok(page)
            })
            .await?;
        let mut out = Vec::with_capacity(page.len());
        for (p, current) in page {
            match current {
                Some(e) => out.push(e),
                None => match self.file(&p).await {
                    Ok(e) => out.push(e),
                    // Gone or changed into something else since the listing, or not readable
                    // by the server (reported by the reconcile): skip it.
                    Err(
                        LibraryError::FileNotFound
                        | LibraryError::NotAFile
                        | LibraryError::Unreadable,
                    ) => {}
                    Err(e) => return Err(e),
                },
            }
        }
        Ok(out)
    }

    /// Checks that a media path is an existing folder.
    fn require_folder(&self, p: &MediaPath) -> Result<PathBuf> {
        let path = self.layout().file(p)?;
        match std::fs::metadata(&path) {
            Ok(md) if md.is_dir() => Ok(path),
            Ok(_) => Err(LibraryError::NotAFolder),
            Err(e) => Err(read_error(e, LibraryError::FolderNotFound)),
        }
    }

    /// The visible files and sub-folders directly in a folder, each sorted.
    fn children(&self, folder: &MediaPath) -> Result<(Vec<MediaPath>, Vec<MediaPath>)> {
        let dir = self.require_folder(folder)?;
        let (mut files, mut folders) = (Vec::new(), Vec::new());
        let read = std::fs::read_dir(&dir).map_err(|e| match e.kind() {
            io::ErrorKind::PermissionDenied => LibraryError::Unreadable,
            _ => io::Error::new(e.kind(), format!("listing {}: {e}", dir.display())).into(),
        })?;
        for entry in read.filter_map(|e| e.ok()) {
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|_| !is_hidden_name(&name)) else {
                continue;
            };
            let Ok(p) = folder.join(name) else { continue };
            match entry.file_type() {
                Ok(t) if t.is_file() => files.push(p),
                Ok(t) if t.is_dir() => folders.push(p),
                _ => {}
            }
        }
        files.sort();
        folders.sort();
        Ok((files, folders))
    }

    /// Waits until the start-up reconcile has filled the hash map.
    pub async fn wait_scanned(&self) {
        let mut rx = self.inner.scanned.subscribe();
        let _ = rx.wait_for(|done| *done).await;
    }

    pub fn is_scanned(&self) -> bool {
        *self.inner.scanned.borrow()
    }
}

/// A meta file: `Ok(None)` when there is none, `Err(message)` inside when it is not valid YAML.
fn read_meta_at(path: &Path) -> Result<Result<Option<Mapping>, String>> {
    match meta::read(path) {
        Ok(m) => Ok(Ok(m)),
        Err(MetaError::Invalid { message, .. }) => Ok(Err(message)),
        Err(MetaError::Io(e)) => Err(e.into()),
    }
}

/// The first bytes of a file, for sniffing.
fn read_head(path: &Path) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut head = Vec::with_capacity(sniff::HEAD_LEN);
    std::fs::File::open(path)?
        .take(sniff::HEAD_LEN as u64)
        .read_to_end(&mut head)?;
    Ok(head)
}
