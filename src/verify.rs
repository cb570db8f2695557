//! `flextype verify`: re-hashes every file and compares the tree, the meta and the index.
//!
//! Finds content that changed behind its recorded hash (bit rot: same size and mtime,
//! different bytes), content changed while nobody watched, files without meta, orphaned and
//! invalid meta, and index drift. With `fix`, repairs what can be repaired without losing
//! editors' fields: facts are refreshed (editor fields kept), orphaned meta first goes to a
//! file with its content, and the index is brought in line. Corrupt content and invalid YAML
//! need a person and are only reported.

use std::collections::{HashMap, HashSet};

use crate::hashing::hash_file;
use crate::index::{DocInput, SearchIndex, Stamp};
use crate::library::{mtime_secs, Indexable, Library, LibraryError};
use crate::progress::Progress;
use crate::storage::meta;
use crate::storage::paths::MediaPath;

/// What kind of problem a finding is; `code()` is its stable name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Same size and mtime as recorded, different bytes.
    Corrupt,
    /// Size or mtime differ from the meta: changed while the server was not looking.
    Changed,
    MissingMeta,
    InvalidMeta,
    OrphanedMeta,
    IndexDrift,
}

impl Kind {
    pub fn code(self) -> &'static str {
        match self {
            Kind::Corrupt => "corrupt",
            Kind::Changed => "changed",
            Kind::MissingMeta => "missing-meta",
            Kind::InvalidMeta => "invalid-meta",
            Kind::OrphanedMeta => "orphaned-meta",
            Kind::IndexDrift => "index-drift",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: Kind,
    pub path: MediaPath,
    pub detail: String,
    pub fixed: bool,
}

/// Checks everything; with `fix`, repairs what it safely can. `index` is `None` when the
/// index cannot be opened for writing (a running server holds it): drift is then not checked.
pub async fn verify(
    library: &Library,
    index: Option<&SearchIndex>,
    fix: bool,
    progress: &dyn Progress,
) -> Result<Vec<Finding>, anyhow::Error> {
    let lib = library.clone();
    let walked =
        tokio::task::spawn_blocking(move || lib.walk_stamped(&MediaPath::root())).await??;
    // Progress counts bytes hashed: one large video is most of the work.
    progress.begin(walked.iter().map(|f| f.size).sum());
    let mut findings = Vec::new();
    let mut present = HashSet::new();
    for f in &walked {
        present.insert(f.path.clone());
        let lib = library.clone();
        let p = f.path.clone();
        let found = tokio::task::spawn_blocking(move || check_file(&lib, &p)).await??;
        progress.advance(f.size);
        findings.extend(found);
    }
    progress.finish();

    let lib = library.clone();
    let metas =
        tokio::task::spawn_blocking(move || lib.meta_files_below(&MediaPath::root())).await??;
    let orphans: Vec<MediaPath> = metas.into_iter().filter(|p| !present.contains(p)).collect();
    if fix {
        // Orphans are offered to files without meta before those get fresh meta.
        for o in &orphans {
            library.note_orphan(o).await?;
        }
        for f in findings.iter_mut() {
            if matches!(f.kind, Kind::Changed | Kind::MissingMeta) {
                f.fixed = library.file(&f.path).await.is_ok();
            }
        }
    }
    for o in orphans {
        let lib = library.clone();
        let q = o.clone();
        let fixed = fix && tokio::task::spawn_blocking(move || remove_orphan(&lib, &q)).await??;
        findings.push(Finding {
            kind: Kind::OrphanedMeta,
            detail: "meta without a file".into(),
            path: o,
            fixed,
        });
    }
    if let Some(index) = index {
        let lib = library.clone();
        let ix = index.clone();
        let reported: HashSet<MediaPath> = findings.iter().map(|f| f.path.clone()).collect();
        let drift =
            tokio::task::spawn_blocking(move || index_drift(&lib, &ix, fix, &reported)).await??;
        findings.extend(drift);
    }
    Ok(findings)
}

/// Re-hashes one file and compares it with its meta.
fn check_file(lib: &Library, p: &MediaPath) -> Result<Vec<Finding>, LibraryError> {
    let finding = |kind, detail: String| Finding {
        kind,
        path: p.clone(),
        detail,
        fixed: false,
    };
    let path = lib.layout().file(p)?;
    let md = std::fs::metadata(&path)?;
    let (hash, _) = hash_file(&path)?;
    let hash = hash.to_hex();
    let m = match lib.read_meta(p)? {
        Ok(Some(m)) => m,
        Ok(None) => return Ok(vec![finding(Kind::MissingMeta, "no meta file".into())]),
        Err(message) => return Ok(vec![finding(Kind::InvalidMeta, message)]),
    };
    let recorded = meta::hash_of(&m).unwrap_or("");
    if recorded == hash {
        return Ok(vec![]);
    }
    let same_stamp = meta::is_current(&m, md.len(), mtime_secs(md.modified()?));
    Ok(vec![if same_stamp {
        finding(
            Kind::Corrupt,
            format!("content hash {hash} differs from the recorded {recorded} with size and mtime unchanged; restore it from a backup"),
        )
    } else {
        finding(
            Kind::Changed,
            "content changed since its meta was written".into(),
        )
    }])
}

/// Removes orphaned meta that no file took over.
fn remove_orphan(lib: &Library, p: &MediaPath) -> Result<bool, LibraryError> {
    if lib.layout().file(p)?.exists() {
        return Ok(true); // its file came back: nothing is orphaned any more
    }
    match std::fs::remove_file(lib.layout().meta_file(p)?) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e.into()),
    }
}

/// Compares what the index holds with the files and their meta now.
fn index_drift(
    lib: &Library,
    index: &SearchIndex,
    fix: bool,
    reported: &HashSet<MediaPath>,
) -> anyhow::Result<Vec<Finding>> {
    let mut known: HashMap<String, crate::index::Indexed> = index.snapshot()?;
    let mut out = Vec::new();
    let drift = |p: &MediaPath, detail: &str| Finding {
        kind: Kind::IndexDrift,
        path: p.clone(),
        detail: detail.into(),
        fixed: fix,
    };
    for f in lib.walk_stamped(&MediaPath::root())? {
        let indexed = known.remove(f.path.as_str());
        match lib.indexable(&f.path)? {
            Indexable::Current(entry, meta_modified) => {
                let stamp = Stamp {
                    filesize: entry.size,
                    modified_on: mtime_secs(entry.modified),
                    meta_modified,
                };
                let (detail, stale) = match &indexed {
                    None => ("not in the index", true),
                    Some(ix) if ix.stamp != stamp || ix.hash.as_deref() != entry.hash() => {
                        ("the index holds an older version", true)
                    }
                    Some(_) => ("", false),
                };
                if stale {
                    // A file already reported (changed, fixed) is not reported twice.
                    if !reported.contains(&f.path) {
                        out.push(drift(&f.path, detail));
                    }
                    if fix {
                        index.upsert(&DocInput {
                            path: entry.path.as_str(),
                            meta: &entry.meta,
                            stamp,
                            protected: entry.is_protected(lib.protection()),
                        })?;
                    }
                }
            }
            // Reported above as changed, missing or invalid meta.
            Indexable::Stale | Indexable::Broken | Indexable::Gone => {}
        }
    }
    for path in known.keys() {
        if let Ok(p) = MediaPath::parse(path) {
            out.push(drift(&p, "in the index but not on disk"));
        }
        if fix {
            index.delete(path)?;
        }
    }
    if fix {
        index.commit()?;
    }
    Ok(out)
}
