//! Following what people do by hand in `uploads/`: files dropped in, changed, renamed, moved
//! out and back, meta edited or broken.
//!
//! Every function here re-reads the disk and is idempotent, so an event seen twice, late or
//! caused by the server's own write is harmless. Meta whose file vanished becomes an *orphan*
//! for a grace period: a file with the same content that appears meanwhile (a move that arrived
//! as delete + create) takes it over, uuid and editors' fields included; so does a file that
//! appeared with fresh default meta just before (copy, then delete). After the grace period the
//! orphan is removed and reported.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io;
use std::time::{Duration, Instant};

use serde_yaml::{Mapping, Value};

use super::{now_secs, Change, Library, LibraryError, Result};
use crate::storage::meta;
use crate::storage::paths::{MediaPath, META_EXT};

/// How many removed orphans `problems` remembers.
const MAX_REMOVED: usize = 100;
/// How many entries that cannot be served `problems` lists; the rest are counted.
const MAX_REFUSED: usize = 100;
/// The meta keys that describe content rather than the editors' view of it.
const FACT_KEYS: [&str; 5] = ["hash", "filesize", "type", "modified_on", "exif"];

/// Something a person should look at; never holds a server path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub code: &'static str,
    pub path: String,
    pub message: String,
}

#[derive(Default)]
pub(super) struct HandState {
    /// Meta whose file vanished, by content hash: the path it described and since when.
    orphans: HashMap<String, Vec<(MediaPath, Instant)>>,
    /// Files that just got default meta, by content hash: path, the uuid given, when.
    fresh: HashMap<String, Vec<(MediaPath, String, Instant)>>,
    /// Meta files that are not valid YAML, with the parser's message.
    invalid: BTreeMap<MediaPath, String>,
    /// Orphaned meta removed after the grace period, newest last.
    removed: VecDeque<(MediaPath, i64)>,
    /// What the last walk of the whole tree, and reads since, found that cannot be served.
    refused: Vec<Problem>,
    /// How many more of those there were than are listed.
    refused_more: usize,
}

impl Library {
    fn hand(&self) -> std::sync::MutexGuard<'_, HandState> {
        self.inner.hand.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn grace(&self) -> Duration {
        Duration::from_secs(self.config().watch.orphan_grace_s)
    }

    /// Brings a file's meta in line with its content; a file that is gone (or became a
    /// folder) meanwhile is not an error.
    pub async fn refresh_if_present(&self, p: &MediaPath) -> Result<()> {
        match self.file(p).await {
            Ok(_) | Err(LibraryError::FileNotFound | LibraryError::NotAFile) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A file or folder appeared at `p`, or a file there changed.
    pub async fn hand_changed(&self, p: &MediaPath) -> Result<()> {
        let path = self.layout().file(p)?;
        match fs::symlink_metadata(&path) {
            Ok(md) if md.is_dir() => self.hand_folder(p).await,
            Ok(md) if md.is_file() => {
                self.refresh_if_present(p).await?;
                self.changed(Change::File(p.clone()));
                Ok(())
            }
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => self.hand_removed(p).await,
            Err(e) => Err(e.into()),
        }
    }

    /// A folder appeared: every file in it gets (or takes over) meta, then it is re-indexed.
    async fn hand_folder(&self, folder: &MediaPath) -> Result<()> {
        let f = folder.clone();
        let files = self.blocking(move |lib| lib.walk_files(&f)).await?;
        for p in files {
            if let Err(e) = self.refresh_if_present(&p).await {
                tracing::warn!(path = %p, error = %e, "could not read a new file");
            }
        }
        self.changed(Change::Tree(folder.clone()));
        Ok(())
    }

    /// A file or folder is gone from `p`: its meta (or its folder's meta) becomes orphaned.
    pub async fn hand_removed(&self, p: &MediaPath) -> Result<()> {
        let q = p.clone();
        let orphaned = self
            .blocking(move |lib| {
                if lib.layout().file(&q)?.exists() {
                    return Ok(Vec::new());
                }
                let mut found = Vec::new();
                if lib.layout().meta_file(&q)?.is_file() {
                    found.push(q.clone());
                }
                let twin = lib.layout().meta_folder(&q)?;
                if twin.is_dir() {
                    found.extend(lib.meta_files_below(&q)?);
                }
                Ok(found)
            })
            .await?;
        for o in orphaned {
            self.note_orphan(&o).await?;
        }
        {
            let mut hashes = self.hashes();
            hashes.remove(p);
            hashes.remove_tree(p);
        }
        self.changed(Change::File(p.clone()));
        self.changed(Change::Tree(p.clone()));
        Ok(())
    }

    /// A file or folder was renamed within the tree: its meta follows.
    pub async fn hand_renamed(&self, from: &MediaPath, to: &MediaPath) -> Result<()> {
        let tree = self.inner.locks.tree().await;
        let (f, t) = (from.clone(), to.clone());
        let kind = self
            .blocking(move |lib| {
                let dst = lib.layout().file(&t)?;
                let Ok(md) = fs::symlink_metadata(&dst) else {
                    return Ok(None);
                };
                let (src_meta, dst_meta) = if md.is_dir() {
                    (lib.layout().meta_folder(&f)?, lib.layout().meta_folder(&t)?)
                } else {
                    (lib.layout().meta_file(&f)?, lib.layout().meta_file(&t)?)
                };
                if src_meta.exists() && !dst_meta.exists() && !lib.layout().file(&f)?.exists() {
                    if let Some(parent) = dst_meta.parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::rename(&src_meta, &dst_meta)?;
                }
                let mut hashes = lib.hashes();
                if md.is_dir() {
                    hashes.rebase(&f, &t);
                } else {
                    hashes.remove(&f);
                }
                Ok(Some(md.is_dir()))
            })
            .await?;
        drop(tree);
        match kind {
            // Renamed again before this was seen: whatever is at `to` will be reported too.
            None => self.hand_removed(from).await,
            Some(true) => {
                self.changed(Change::Tree(from.clone()));
                self.hand_folder(to).await
            }
            Some(false) => {
                self.changed(Change::File(from.clone()));
                self.hand_changed(to).await
            }
        }
    }

    /// A meta file was written by hand (or by the server): re-read it. Meta without a file
    /// may be the first half of a move, so it is held as an orphan.
    pub async fn hand_meta_changed(&self, p: &MediaPath) -> Result<()> {
        let file = self.layout().file(p)?;
        if !file.exists() {
            return self.note_orphan(p).await;
        }
        self.changed(Change::File(p.clone()));
        Ok(())
    }

    /// A meta file was deleted by hand: its file gets default meta again.
    pub async fn hand_meta_removed(&self, p: &MediaPath) -> Result<()> {
        if self.layout().file(p)?.is_file() {
            self.refresh_if_present(p).await?;
        }
        self.changed(Change::File(p.clone()));
        Ok(())
    }

    /// Holds the meta of a vanished file for the grace period, unless a file with the same
    /// content just got fresh meta, in which case that file takes it over at once.
    pub async fn note_orphan(&self, p: &MediaPath) -> Result<()> {
        let q = p.clone();
        let hash = self
            .blocking(move |lib| {
                if lib.layout().file(&q)?.exists() {
                    return Ok(None);
                }
                Ok(match meta::read(&lib.layout().meta_file(&q)?) {
                    Ok(Some(m)) => meta::hash_of(&m).map(str::to_string),
                    _ => None,
                })
            })
            .await?;
        let Some(hash) = hash else { return Ok(()) };
        if let Some((fresh, uuid)) = self.take_fresh(&hash, p) {
            let _guard = self.inner.locks.files(&[&fresh, p]).await;
            let (f, o) = (fresh.clone(), p.clone());
            if self
                .blocking(move |lib| lib.adopt_into_fresh(&f, &o, &uuid))
                .await?
            {
                tracing::info!(from = %p, to = %fresh, "meta followed a file copied then deleted");
                return Ok(());
            }
        }
        let mut hand = self.hand();
        let list = hand.orphans.entry(hash).or_default();
        if !list.iter().any(|(o, _)| o == p) {
            list.push((p.clone(), Instant::now()));
        }
        Ok(())
    }

    /// Moves orphaned meta with this content hash to `p` (whose meta is missing); caller
    /// holds `p`'s lock.
    pub(super) fn adopt_orphan(&self, p: &MediaPath, hash: &str) -> Result<Option<Mapping>> {
        let candidates: Vec<MediaPath> = {
            let mut hand = self.hand();
            let Some(list) = hand.orphans.get_mut(hash) else {
                return Ok(None);
            };
            let taken = std::mem::take(list);
            hand.orphans.remove(hash);
            taken.into_iter().map(|(o, _)| o).collect()
        };
        let mut adopted = None;
        let mut left = Vec::new();
        for orphan in candidates {
            if adopted.is_some() || orphan == *p || self.layout().file(&orphan)?.exists() {
                left.push(orphan);
                continue;
            }
            let src = self.layout().meta_file(&orphan)?;
            let m = match meta::read(&src) {
                Ok(Some(m)) if meta::hash_of(&m) == Some(hash) => m,
                _ => continue,
            };
            let dst = self.layout().meta_file(p)?;
            if let Some(parent) = dst.parent() {
                fs::create_dir_all(parent)?;
            }
            fs::rename(&src, &dst)?;
            tracing::info!(from = %orphan, to = %p, "meta followed a file moved by hand");
            adopted = Some(m);
        }
        if !left.is_empty() {
            let now = Instant::now();
            let mut hand = self.hand();
            let list = hand.orphans.entry(hash.to_string()).or_default();
            list.extend(left.into_iter().map(|o| (o, now)));
        }
        Ok(adopted)
    }

    /// Remembers that `p` just got default meta, so orphaned meta with its content that shows
    /// up within the grace period can take its place.
    pub(super) fn note_fresh(&self, p: &MediaPath, hash: &str, meta: &Mapping) {
        let Some(uuid) = meta.get("uuid").and_then(Value::as_str) else {
            return;
        };
        // Expired entries are dropped by `expire_orphans`, once a second, not here: thousands
        // of files dropped at once would make this quadratic.
        let mut hand = self.hand();
        hand.fresh.entry(hash.to_string()).or_default().push((
            p.clone(),
            uuid.to_string(),
            Instant::now(),
        ));
    }

    fn take_fresh(&self, hash: &str, except: &MediaPath) -> Option<(MediaPath, String)> {
        let grace = self.grace();
        let mut hand = self.hand();
        let list = hand.fresh.get_mut(hash)?;
        let i = list
            .iter()
            .position(|(p, _, t)| p != except && t.elapsed() < grace)?;
        let (p, uuid, _) = list.remove(i);
        Some((p, uuid))
    }

    /// Replaces the untouched default meta of `fresh` with the orphaned meta of `orphan`,
    /// keeping the fresh file's facts.
    fn adopt_into_fresh(&self, fresh: &MediaPath, orphan: &MediaPath, uuid: &str) -> Result<bool> {
        let fresh_path = self.layout().meta_file(fresh)?;
        let orphan_path = self.layout().meta_file(orphan)?;
        let Ok(Some(new)) = meta::read(&fresh_path) else {
            return Ok(false);
        };
        if new.get("uuid").and_then(Value::as_str) != Some(uuid) {
            return Ok(false); // edited since it was made: leave it alone
        }
        let Ok(Some(mut old)) = meta::read(&orphan_path) else {
            return Ok(false);
        };
        if meta::hash_of(&old) != meta::hash_of(&new) || self.layout().file(orphan)?.exists() {
            return Ok(false);
        }
        for key in FACT_KEYS {
            if let Some(v) = new.get(key) {
                old.insert(Value::from(key), v.clone());
            }
        }
        meta::write(&fresh_path, &old)?;
        fs::remove_file(&orphan_path)?;
        self.index_set(fresh, &old);
        Ok(true)
    }

    /// Removes orphaned meta older than the grace period whose file did not come back; returns
    /// how many were removed.
    pub fn expire_orphans(&self) -> Result<usize> {
        let grace = self.grace();
        let expired: Vec<MediaPath> = {
            let mut hand = self.hand();
            let mut out = Vec::new();
            for list in hand.orphans.values_mut() {
                list.retain(|(p, t)| {
                    let old = t.elapsed() >= grace;
                    if old {
                        out.push(p.clone());
                    }
                    !old
                });
            }
            hand.orphans.retain(|_, l| !l.is_empty());
            for list in hand.fresh.values_mut() {
                list.retain(|(_, _, t)| t.elapsed() < grace);
            }
            hand.fresh.retain(|_, l| !l.is_empty());
            out
        };
        let mut removed = 0;
        for p in expired {
            if self.layout().file(&p)?.exists() {
                continue;
            }
            match fs::remove_file(self.layout().meta_file(&p)?) {
                Ok(()) => {
                    tracing::warn!(path = %p, "removed meta whose file is gone");
                    let mut hand = self.hand();
                    hand.removed.push_back((p.clone(), now_secs()));
                    while hand.removed.len() > MAX_REMOVED {
                        hand.removed.pop_front();
                    }
                    removed += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
            self.changed(Change::File(p));
        }
        Ok(removed)
    }

    /// Records or clears a meta file's parse failure.
    pub(super) fn note_invalid(&self, p: &MediaPath, message: Option<&str>) {
        let mut hand = self.hand();
        match message {
            Some(m) => {
                if hand.invalid.get(p).map(String::as_str) != Some(m) {
                    tracing::warn!(path = %p, error = %m, "meta file is not valid YAML; keeping the last good meta");
                    hand.invalid.insert(p.clone(), m.to_string());
                }
            }
            None => {
                if !hand.invalid.is_empty() {
                    hand.invalid.remove(p);
                }
            }
        }
    }

    /// Replaces what cannot be served with what a walk of the whole tree found; entries not
    /// known before are logged.
    pub(super) fn set_refused(&self, mut found: Vec<Problem>) {
        let mut hand = self.hand();
        for new in found.iter().take(MAX_REFUSED) {
            if !hand.refused.contains(new) {
                tracing::warn!(code = new.code, path = %new.path, why = %new.message, "not served");
            }
        }
        let more = found.len().saturating_sub(MAX_REFUSED);
        if more > 0 && more != hand.refused_more {
            tracing::warn!(more, "more entries are not served than are listed");
        }
        hand.refused_more = more;
        found.truncate(MAX_REFUSED);
        hand.refused = found;
    }

    /// Records one more entry that cannot be served (until the next walk of the whole tree).
    pub(super) fn note_refused(&self, problem: Problem) {
        let mut hand = self.hand();
        if hand.refused.contains(&problem) {
            return;
        }
        if hand.refused.len() < MAX_REFUSED {
            tracing::warn!(code = problem.code, path = %problem.path, why = %problem.message, "not served");
            hand.refused.push(problem);
        } else {
            hand.refused_more += 1;
        }
    }

    /// Forgets that a file could not be read, once it could.
    pub(super) fn note_readable(&self, p: &MediaPath) {
        let mut hand = self.hand();
        if !hand.refused.is_empty() {
            hand.refused
                .retain(|r| r.code != "unreadable" || r.path != p.as_str());
        }
    }

    /// What needs a person's attention: invalid meta, orphaned meta that was removed, and
    /// what in the tree cannot be served (at most [`MAX_REFUSED`], then a count).
    pub fn problems(&self) -> Vec<Problem> {
        let hand = self.hand();
        let invalid = hand.invalid.iter().map(|(p, m)| Problem {
            code: "invalid-meta",
            path: p.to_string(),
            message: m.clone(),
        });
        let removed = hand.removed.iter().map(|(p, at)| Problem {
            code: "orphaned-meta-removed",
            path: p.to_string(),
            message: format!("meta without a file was removed at {at} (Unix time)"),
        });
        let more = (hand.refused_more > 0).then(|| Problem {
            code: "more-refused",
            path: String::new(),
            message: format!(
                "{} more entries cannot be served (only the first {MAX_REFUSED} are listed)",
                hand.refused_more
            ),
        });
        invalid
            .chain(removed)
            .chain(hand.refused.iter().cloned())
            .chain(more)
            .collect()
    }

    /// The media paths of every meta file at or below a folder's meta twin.
    pub fn meta_files_below(&self, folder: &MediaPath) -> Result<Vec<MediaPath>> {
        let twin = self.layout().meta_folder(folder)?;
        let root = self.layout().meta_folder(&MediaPath::root())?;
        let suffix = format!(".{META_EXT}");
        let mut out = Vec::new();
        for entry in walkdir::WalkDir::new(&twin)
            .follow_links(false)
            .into_iter()
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file())
        {
            let Ok(rel) = entry.path().strip_prefix(&root) else {
                continue;
            };
            let Some(media) = rel.to_str().and_then(|s| s.strip_suffix(&suffix)) else {
                continue;
            };
            if let Some(p) = MediaPath::from_relative(std::path::Path::new(media)) {
                out.push(p);
            }
        }
        Ok(out)
    }
}
