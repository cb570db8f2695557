//! Watches `uploads/` (notify + notify-debouncer-full) and turns what people do by hand into a
//! small set of [`Observed`] facts, sent in batches over a channel.
//!
//! Writes nothing and decides nothing: the indexer acts on what is observed through the
//! library. Dot-names (the `.staging` folder, the server's temp files), partial-download names
//! and anything that is not a valid media path are dropped here, so the server's own temp
//! files never become work. Paths in the `.meta` mirror are reported as the media path whose
//! meta changed.

use std::path::Path;
use std::time::Duration;

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode};
use notify_debouncer_full::{
    new_debouncer_opt, DebounceEventResult, DebouncedEvent, Debouncer, RecommendedCache,
};
use tokio::sync::mpsc::UnboundedSender;

use crate::storage::paths::{MediaPath, META_DIR, META_EXT};

/// Something that happened under `uploads/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observed {
    /// A file or folder appeared, or a file's content changed.
    Changed(MediaPath),
    /// A file or folder is gone from this path.
    Removed(MediaPath),
    /// A file or folder was renamed or moved within the tree.
    Renamed { from: MediaPath, to: MediaPath },
    /// The meta file of this media path was written or appeared.
    MetaChanged(MediaPath),
    /// The meta file of this media path is gone.
    MetaRemoved(MediaPath),
    /// Events were lost (queue overflow, watch limit): everything must be looked at again.
    Rescan,
}

/// Keeps the watch alive; dropping it stops watching.
pub struct Watcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
}

/// Where a path on disk sits, seen from the library.
#[derive(Debug, PartialEq, Eq)]
enum Place {
    Media(MediaPath),
    Meta(MediaPath),
    Ignored,
}

/// Starts watching `uploads` recursively; batches of observations go to `tx` once each path
/// has been quiet for `quiet`.
pub fn watch(
    uploads: &Path,
    quiet: Duration,
    tx: UnboundedSender<Vec<Observed>>,
) -> notify::Result<Watcher> {
    let root = uploads.to_path_buf();
    let handler = move |result: DebounceEventResult| {
        let batch = match result {
            Ok(events) => translate(&root, &events),
            Err(errors) => {
                for e in &errors {
                    tracing::warn!(error = %e, "file watcher error; rescanning");
                }
                vec![Observed::Rescan]
            }
        };
        if !batch.is_empty() {
            let _ = tx.send(batch);
        }
    };
    // Symlinks are not followed: a link to a folder elsewhere would have every folder below
    // it watched (a link to `/usr` is tens of thousands of watches, enough to reach the
    // inotify limit), and a link to a folder inside the tree would have that folder's events
    // reported under the link's path, so a dropped file got its meta there.
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut debouncer = new_debouncer_opt(quiet, None, handler, RecommendedCache::new(), config)
        .map_err(|e| e.add_path(uploads.to_path_buf()))?;
    watch_readable(&mut debouncer, uploads)?;
    Ok(Watcher {
        _debouncer: debouncer,
    })
}

/// Watches `dir` and every folder below it that can be read. A recursive watch fails as a
/// whole on the first folder it may not read (inotify needs read access), so then each
/// sub-folder is watched on its own, leaving out only the unreadable ones; the reconcile
/// reports those.
fn watch_readable(
    debouncer: &mut Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    dir: &Path,
) -> notify::Result<()> {
    match debouncer.watch(dir, RecursiveMode::Recursive) {
        Err(e) if is_permission_denied(&e) => {
            tracing::debug!(dir = %dir.display(), error = %e, "a folder cannot be watched; watching its sub-folders one by one");
            let Ok(entries) = std::fs::read_dir(dir) else {
                return Ok(());
            };
            for entry in entries.flatten() {
                // `file_type` does not follow symlinks.
                if entry.file_type().is_ok_and(|t| t.is_dir()) {
                    watch_readable(debouncer, &entry.path())?;
                }
            }
            Ok(())
        }
        other => other,
    }
}

fn is_permission_denied(e: &notify::Error) -> bool {
    matches!(&e.kind, notify::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::PermissionDenied)
}

/// Debounced notify events as observations, in order, with ignored paths dropped.
fn translate(root: &Path, events: &[DebouncedEvent]) -> Vec<Observed> {
    let mut out = Vec::new();
    for event in events {
        if event.need_rescan() {
            out.push(Observed::Rescan);
            continue;
        }
        let end = |i: usize| {
            event
                .paths
                .get(i)
                .map_or(Place::Ignored, |p| place(root, p))
        };
        let observed = match event.kind {
            EventKind::Create(_) => changed(end(0)),
            EventKind::Remove(_) => removed(end(0)),
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => {
                renamed(end(0), end(event.paths.len().saturating_sub(1)))
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => removed(end(0)),
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => changed(end(0)),
            EventKind::Modify(ModifyKind::Name(_)) => match event.paths.first() {
                Some(p) if p.exists() => changed(end(0)),
                _ => removed(end(0)),
            },
            EventKind::Modify(_) => changed(end(0)),
            EventKind::Access(_) | EventKind::Any | EventKind::Other => vec![],
        };
        out.extend(observed);
    }
    out
}

fn changed(at: Place) -> Vec<Observed> {
    match at {
        Place::Media(p) => vec![Observed::Changed(p)],
        Place::Meta(p) => vec![Observed::MetaChanged(p)],
        Place::Ignored => vec![],
    }
}

fn removed(at: Place) -> Vec<Observed> {
    match at {
        Place::Media(p) => vec![Observed::Removed(p)],
        Place::Meta(p) => vec![Observed::MetaRemoved(p)],
        Place::Ignored => vec![],
    }
}

/// A rename is only a rename when both ends are media paths; a temp file renamed into place
/// is a change, a file renamed to a hidden name is a removal.
fn renamed(from: Place, to: Place) -> Vec<Observed> {
    match (from, to) {
        (Place::Media(from), Place::Media(to)) => vec![Observed::Renamed { from, to }],
        (from, to) => {
            let mut out = removed(from);
            out.extend(changed(to));
            out
        }
    }
}

/// Classifies an absolute path under `root` (the uploads folder).
fn place(root: &Path, path: &Path) -> Place {
    let Ok(rel) = path.strip_prefix(root) else {
        return Place::Ignored;
    };
    if let Ok(in_meta) = rel.strip_prefix(META_DIR) {
        let Some(name) = in_meta.to_str() else {
            return Place::Ignored;
        };
        return match name.strip_suffix(&format!(".{META_EXT}")) {
            Some(media) => {
                MediaPath::from_relative(Path::new(media)).map_or(Place::Ignored, Place::Meta)
            }
            None => Place::Ignored,
        };
    }
    MediaPath::from_relative(rel).map_or(Place::Ignored, |p| {
        if p.is_root() {
            Place::Ignored
        } else {
            Place::Media(p)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mp(s: &str) -> MediaPath {
        MediaPath::parse(s).unwrap()
    }

    #[test]
    fn places_media_meta_and_ignored_paths() {
        let root = Path::new("/p/uploads");
        let at = |s: &str| place(root, &root.join(s));
        assert_eq!(at("a/b.jpg"), Place::Media(mp("a/b.jpg")));
        assert_eq!(at(".meta/a/b.jpg.yaml"), Place::Meta(mp("a/b.jpg")));
        for ignored in [
            ".meta/a/.flextype-tmp-x",
            ".meta/a",
            ".staging/x",
            "a/.hidden.jpg",
            "a/.flextype-tmp-123",
            "a/video.mp4.part",
            "a/x.crdownload",
            "",
        ] {
            assert_eq!(at(ignored), Place::Ignored, "{ignored}");
        }
        assert_eq!(place(root, Path::new("/elsewhere/x")), Place::Ignored);
    }

    #[test]
    fn translates_events_and_asks_for_a_rescan_when_events_were_lost() {
        use notify::event::{CreateKind, Flag, RemoveKind};
        use notify::Event;
        let root = Path::new("/p/uploads");
        let at = |s: &str| root.join(s);
        let event = |e: Event| DebouncedEvent::new(e, std::time::Instant::now());
        let events = [
            event(Event::new(EventKind::Create(CreateKind::File)).add_path(at("a/x.jpg"))),
            event(Event::new(EventKind::Remove(RemoveKind::File)).add_path(at(".meta/b.txt.yaml"))),
            event(
                Event::new(EventKind::Modify(ModifyKind::Name(RenameMode::Both)))
                    .add_path(at(".staging/.flextype-tmp-1"))
                    .add_path(at("c.png")),
            ),
            event(Event::new(EventKind::Access(notify::event::AccessKind::Any)).add_path(at("d"))),
            event(Event::new(EventKind::Other).set_flag(Flag::Rescan)),
        ];
        assert_eq!(
            translate(root, &events),
            [
                Observed::Changed(mp("a/x.jpg")),
                Observed::MetaRemoved(mp("b.txt")),
                Observed::Changed(mp("c.png")),
                Observed::Rescan,
            ]
        );
    }

    #[test]
    fn renames_between_kinds_of_place() {
        let m = |s: &str| Place::Media(mp(s));
        assert_eq!(
            renamed(m("a.jpg"), m("b/a.jpg")),
            vec![Observed::Renamed {
                from: mp("a.jpg"),
                to: mp("b/a.jpg")
            }]
        );
        assert_eq!(
            renamed(Place::Ignored, m("a.jpg")),
            vec![Observed::Changed(mp("a.jpg"))]
        );
        assert_eq!(
            renamed(m("a.jpg"), Place::Ignored),
            vec![Observed::Removed(mp("a.jpg"))]
        );
        assert_eq!(
            renamed(Place::Ignored, Place::Meta(mp("a.jpg"))),
            vec![Observed::MetaChanged(mp("a.jpg"))]
        );
    }
}
