//! Operations on folders: each moves, copies or deletes the `.meta` twin along with the folder.

use std::fs;
use std::io;
use std::path::Path;

use super::{not_found_as, now_secs, Change, Library, LibraryError, Result};
use crate::storage::atomic::{self, rename_noreplace};
use crate::storage::meta;
use crate::storage::paths::{is_hidden_name, MediaPath, META_EXT};

/// A folder and what it directly holds.
#[derive(Debug, Clone)]
pub struct FolderInfo {
    pub path: MediaPath,
    pub files: Vec<String>,
    pub folders: Vec<String>,
}

impl Library {
    fn folder_info(&self, p: &MediaPath) -> Result<FolderInfo> {
        let (files, folders) = self.children(p)?;
        let names = |v: Vec<MediaPath>| v.iter().map(|c| c.name().to_string()).collect();
        Ok(FolderInfo {
            path: p.clone(),
            files: names(files),
            folders: names(folders),
        })
    }

    pub async fn folder(&self, p: &MediaPath) -> Result<FolderInfo> {
        let p = p.clone();
        self.blocking(move |lib| lib.folder_info(&p)).await
    }

    /// The sub-folders of a folder (all below it when `recursive`), sorted by path.
    pub async fn subfolders(&self, p: &MediaPath, recursive: bool) -> Result<Vec<FolderInfo>> {
        let p = p.clone();
        self.blocking(move |lib| {
            let root = lib.require_folder(&p)?;
            let mut paths: Vec<MediaPath> = if recursive {
                walkdir::WalkDir::new(&root)
                    .min_depth(1)
                    .follow_links(false)
                    .into_iter()
                    .filter_entry(|e| !is_hidden_name(e.file_name()))
                    .filter_map(|e| e.ok())
                    .filter(|e| e.file_type().is_dir())
                    .filter_map(|e| lib.layout().media_path_of(e.path()))
                    .collect()
            } else {
                lib.children(&p)?.1
            };
            paths.sort();
            paths.iter().map(|f| lib.folder_info(f)).collect()
        })
        .await
    }

    pub async fn create_folder(&self, p: &MediaPath) -> Result<FolderInfo> {
        if p.is_root() {
            return Err(LibraryError::FolderExists(String::new()));
        }
        let _guard = self.inner.locks.tree().await;
        let p = p.clone();
        self.blocking(move |lib| {
            let dir = lib.layout().file(&p)?;
            if fs::symlink_metadata(&dir).is_ok() {
                return Err(LibraryError::FolderExists(p.to_string()));
            }
            if let Some(parent) = p.parent() {
                lib.ensure_folder(&parent)?;
            }
            fs::create_dir(&dir)?;
            fs::create_dir_all(lib.layout().meta_folder(&p)?)?;
            lib.folder_info(&p)
        })
        .await
    }

    pub async fn move_folder(&self, from: &MediaPath, to: &MediaPath) -> Result<FolderInfo> {
        check_not_inside(from, to)?;
        let _guard = self.inner.locks.tree().await;
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |lib| {
            let src = lib.require_folder(&from)?;
            let dst = lib.layout().file(&to)?;
            if fs::symlink_metadata(&dst).is_ok() {
                return Err(LibraryError::FolderExists(to.to_string()));
            }
            if let Some(parent) = to.parent() {
                lib.ensure_folder(&parent)?;
            }
            rename_noreplace(&src, &dst).map_err(|e| exists_as(e, &to))?;
            let (msrc, mdst) = (
                lib.layout().meta_folder(&from)?,
                lib.layout().meta_folder(&to)?,
            );
            if msrc.exists() {
                let moved = mdst
                    .parent()
                    .map_or(Ok(()), fs::create_dir_all)
                    .and_then(|_| {
                        // A stale twin left at the target by hand would block the rename.
                        if mdst.exists() {
                            fs::remove_dir_all(&mdst)?;
                        }
                        fs::rename(&msrc, &mdst)
                    });
                if let Err(e) = moved {
                    let _ = fs::rename(&dst, &src);
                    return Err(io::Error::new(e.kind(), format!("moving meta folder: {e}")).into());
                }
            }
            atomic::sync_dir(dst.parent().unwrap_or(&dst))?;
            lib.hashes().rebase(&from, &to);
            lib.changed(Change::Tree(from));
            lib.changed(Change::Tree(to.clone()));
            lib.folder_info(&to)
        })
        .await
    }

    pub async fn copy_folder(&self, from: &MediaPath, to: &MediaPath) -> Result<FolderInfo> {
        check_not_inside(from, to)?;
        let _guard = self.inner.locks.tree().await;
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |lib| {
            lib.require_folder(&from)?;
            let dst = lib.layout().file(&to)?;
            if fs::symlink_metadata(&dst).is_ok() {
                return Err(LibraryError::FolderExists(to.to_string()));
            }
            if let Some(parent) = to.parent() {
                lib.ensure_folder(&parent)?;
            }
            let files = lib.walk_files(&from)?;
            // The copy is made out of sight, in temp folders beside the folder and its twin,
            // and renamed into place meta first: a crash leaves no copy (at worst its meta,
            // orphaned and removed after the grace period) or a whole one, never a part.
            let mdst = lib.layout().meta_folder(&to)?;
            let (parent, meta_parent) = (parent_of(&dst), parent_of(&mdst));
            fs::create_dir_all(meta_parent)?;
            let tmp = atomic::temp_dir_in(parent)?;
            let undo = TreeUndo::new(vec![tmp.clone()]);
            let tmp_meta = atomic::temp_dir_in(meta_parent)?;
            let undo = undo.and(tmp_meta.clone());
            copy_dirs(&lib.layout().file(&from)?, &tmp)?;
            let mut copies = Vec::with_capacity(files.len());
            for f in &files {
                let entry = lib.refresh(f)?;
                let (Some(target), Some(rel)) = (f.rebase(&from, &to), f.relative_to(&from)) else {
                    continue;
                };
                let copy = tmp.join(rel);
                fs::copy(lib.layout().file(f)?, &copy)?;
                fs::File::open(&copy)?.sync_all()?;
                let md = fs::metadata(&copy)?;
                let mut m = entry.meta;
                m.insert("uuid".into(), uuid::Uuid::now_v7().to_string().into());
                m.insert("uploaded_on".into(), now_secs().into());
                m.insert(
                    "modified_on".into(),
                    meta::seconds_value(super::mtime_secs(md.modified()?)),
                );
                meta::write(&tmp_meta.join(format!("{rel}.{META_EXT}")), &m)?;
                copies.push((target, m));
            }
            // A stale twin left at the target by hand would block the rename.
            if mdst.exists() {
                fs::remove_dir_all(&mdst)?;
            }
            fs::rename(&tmp_meta, &mdst)?;
            let undo = undo.and(mdst.clone());
            rename_noreplace(&tmp, &dst).map_err(|e| exists_as(e, &to))?;
            undo.disarm();
            atomic::sync_dir(meta_parent)?;
            atomic::sync_dir(parent)?;
            for (target, m) in &copies {
                lib.index_set(target, m);
            }
            lib.folder_info(&to)
        })
        .await
    }

    pub async fn delete_folder(&self, p: &MediaPath, recursive: bool) -> Result<()> {
        if p.is_root() {
            return Err(LibraryError::BadRequest(
                "root-folder",
                "The root folder cannot be deleted".into(),
            ));
        }
        let _guard = self.inner.locks.tree().await;
        let p = p.clone();
        self.blocking(move |lib| {
            let dir = lib.require_folder(&p)?;
            let not_empty = fs::read_dir(&dir)?.next().is_some();
            if not_empty && !recursive {
                return Err(LibraryError::FolderNotEmpty);
            }
            // Out of sight first, the folder before its twin, one rename each: a crash leaves
            // the folder whole or gone (its meta then orphaned and removed after the grace
            // period), never a part of it. What is left in temp folders goes at the next start.
            let hidden = atomic::rename_out_of_sight(&dir)
                .map_err(|e| not_found_as(e, LibraryError::FolderNotFound))?;
            let twin = lib.layout().meta_folder(&p)?;
            let hidden_twin = match twin.exists() {
                true => match atomic::rename_out_of_sight(&twin) {
                    Ok(h) => Some(h),
                    Err(e) => {
                        let _ = fs::rename(&hidden, &dir);
                        return Err(e.into());
                    }
                },
                false => None,
            };
            atomic::sync_dir(parent_of(&dir))?;
            lib.hashes().remove_tree(&p);
            lib.changed(Change::Tree(p.clone()));
            for gone in std::iter::once(&hidden).chain(&hidden_twin) {
                if let Err(e) = fs::remove_dir_all(gone) {
                    tracing::warn!(path = %p, error = %e, "a deleted folder was not removed entirely; the rest goes at the next start");
                }
            }
            Ok(())
        })
        .await
    }
}

fn check_not_inside(from: &MediaPath, to: &MediaPath) -> Result<()> {
    if from.is_root() || to.starts_with(from) {
        return Err(LibraryError::BadRequest(
            "invalid-target",
            "A folder cannot be moved or copied into itself".into(),
        ));
    }
    Ok(())
}

fn exists_as(e: io::Error, p: &MediaPath) -> LibraryError {
    if e.kind() == io::ErrorKind::AlreadyExists {
        LibraryError::FolderExists(p.to_string())
    } else {
        e.into()
    }
}

/// Re-creates the visible folder structure of `src` under `dst` (files are copied apart).
fn copy_dirs(src: &Path, dst: &Path) -> io::Result<()> {
    for e in walkdir::WalkDir::new(src)
        .min_depth(1)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| !is_hidden_name(e.file_name()))
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_dir())
    {
        if let Ok(rel) = e.path().strip_prefix(src) {
            fs::create_dir_all(dst.join(rel))?;
        }
    }
    Ok(())
}

/// The folder holding `path` (a folder of the tree or of `.meta`, never the filesystem root).
fn parent_of(path: &Path) -> &Path {
    path.parent().unwrap_or(path)
}

/// Removes folders made by a copy that failed half-way.
struct TreeUndo(Option<Vec<std::path::PathBuf>>);

impl TreeUndo {
    fn new(dirs: Vec<std::path::PathBuf>) -> Self {
        TreeUndo(Some(dirs))
    }

    /// The same guard, removing `dir` too.
    fn and(mut self, dir: std::path::PathBuf) -> Self {
        let mut dirs = self.0.take().unwrap_or_default();
        dirs.push(dir);
        TreeUndo(Some(dirs))
    }

    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for TreeUndo {
    fn drop(&mut self) {
        for d in self.0.take().unwrap_or_default() {
            let _ = fs::remove_dir_all(d);
        }
    }
}
