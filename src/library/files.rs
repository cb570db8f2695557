//! Operations on single files: upload, move, copy, delete and meta edits.

use std::fs;
use std::io;

use serde_yaml::{Mapping, Value};

use super::{names, not_found_as, now_secs, Change, Entry, Library, LibraryError, Result};
use crate::exif;
use crate::sniff;
use crate::storage::atomic::{self, rename_noreplace, Cleanup, TEMP_PREFIX};
use crate::storage::meta::{self, Facts, FieldError};
use crate::storage::paths::MediaPath;
use crate::storage::staging::Staged;

/// What an upload does when its name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Conflict {
    Refuse,
    Overwrite,
    Rename,
}

/// A meta edit.
#[derive(Debug, Clone)]
pub enum MetaEdit {
    Update(String, Value),
    Add(String, Value),
    Delete(String),
}

impl From<FieldError> for LibraryError {
    fn from(e: FieldError) -> Self {
        match e {
            FieldError::BadName => {
                LibraryError::BadRequest("invalid-field", "Field name is empty or malformed".into())
            }
            FieldError::System(f) => LibraryError::SystemField(f),
            FieldError::Missing(f) => LibraryError::FieldNotFound(f),
            FieldError::Exists(f) => LibraryError::FieldExists(f),
            e @ (FieldError::NotAContainer(_) | FieldError::TooDeep(_)) => {
                LibraryError::BadRequest("invalid-field", e.to_string())
            }
        }
    }
}

/// How many numbered names `rename` tries before giving up.
const MAX_RENAME_TRIES: u32 = 10_000;

impl Library {
    /// Checks a client's file name and content; returns the stored name and its MIME type.
    pub fn check_upload(&self, raw_name: &str, head: &[u8]) -> Result<(String, String)> {
        let name = names::upload_name(raw_name, self.config().media.safe_names)?;
        let ext = names::split_name(&name).1.to_ascii_lowercase();
        if ext.is_empty() || !self.config().accepts_extension(&ext) {
            return Err(LibraryError::TypeNotAccepted(if ext.is_empty() {
                "(none)".into()
            } else {
                ext
            }));
        }
        let mime = sniff::check(head, &ext).map_err(|m| LibraryError::ContentMismatch {
            extension: m.extension,
            found: m.found,
        })?;
        Ok((name, mime))
    }

    /// Stores a staged upload as `folder/name`; parents are created.
    pub async fn ingest(
        &self,
        staged: Staged,
        folder: &MediaPath,
        name: &str,
        mime: String,
        conflict: Conflict,
    ) -> Result<Entry> {
        let target = folder.join(name)?;
        let _guard = self.inner.locks.files(&[&target]).await;
        let folder = folder.clone();
        self.blocking(move |lib| lib.place(staged, &folder, &target, mime, conflict))
            .await
    }

    fn place(
        &self,
        staged: Staged,
        folder: &MediaPath,
        target: &MediaPath,
        mime: String,
        conflict: Conflict,
    ) -> Result<Entry> {
        self.ensure_folder(folder)?;
        let mut target = target.clone();
        let mut previous: Option<Mapping> = None;
        let mut dest = self.layout().file(&target)?;
        match conflict {
            Conflict::Overwrite => {
                if let Ok(md) = fs::metadata(&dest) {
                    if md.is_dir() {
                        return Err(LibraryError::FileExists(target.to_string()));
                    }
                    previous = meta::read(&self.layout().meta_file(&target)?)
                        .ok()
                        .flatten();
                }
                fs::rename(staged.path(), &dest)?;
            }
            Conflict::Refuse => match rename_noreplace(staged.path(), &dest) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(LibraryError::FileExists(target.to_string()))
                }
                other => other?,
            },
            Conflict::Rename => {
                let base = target.name().to_string();
                let mut n = 0;
                loop {
                    match rename_noreplace(staged.path(), &dest) {
                        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                        other => break other?,
                    }
                    n += 1;
                    if n > MAX_RENAME_TRIES {
                        return Err(LibraryError::FileExists(target.to_string()));
                    }
                    target = folder.join(&names::numbered(&base, n))?;
                    dest = self.layout().file(&target)?;
                }
            }
        }
        staged.file.disarm();
        atomic::sync_dir(dest.parent().unwrap_or(&dest))?;
        let placed = Cleanup::new(dest.clone());
        let md = fs::metadata(&dest)?;
        let facts = Facts {
            hash: staged.hash.to_hex(),
            filesize: staged.size,
            exif: exif::extract(&dest, &mime),
            mime,
            modified_on: super::mtime_secs(md.modified()?),
        };
        let stem = names::split_name(target.name()).0;
        let m = match previous {
            Some(mut old) => {
                meta::fill_defaults(&mut old, stem, now_secs());
                meta::apply_facts(&mut old, &facts);
                old
            }
            None => meta::new_meta(stem, now_secs(), &facts),
        };
        meta::write(&self.layout().meta_file(&target)?, &m)?;
        placed.disarm();
        self.index_set(&target, &m);
        Ok(Entry {
            path: target,
            meta: m,
            size: md.len(),
            modified: md.modified()?,
            meta_broken: false,
        })
    }

    /// Creates a folder (and its parents) if missing; refuses when a file is in the way.
    pub(super) fn ensure_folder(&self, folder: &MediaPath) -> Result<()> {
        let dir = self.layout().file(folder)?;
        match fs::metadata(&dir) {
            Ok(md) if md.is_dir() => Ok(()),
            Ok(_) => Err(LibraryError::NotAFolder),
            Err(_) => fs::create_dir_all(&dir).map_err(|e| match e.kind() {
                io::ErrorKind::NotADirectory | io::ErrorKind::AlreadyExists => {
                    LibraryError::NotAFolder
                }
                _ => io::Error::new(e.kind(), format!("creating {}: {e}", dir.display())).into(),
            }),
        }
    }

    /// Moves or renames a file with its meta; the uuid is kept.
    pub async fn move_file(&self, from: &MediaPath, to: &MediaPath) -> Result<Entry> {
        let _guard = self.inner.locks.files(&[from, to]).await;
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |lib| {
            let entry = lib.refresh(&from)?;
            if from == to {
                return Ok(entry);
            }
            let src = lib.layout().file(&from)?;
            let dst = lib.layout().file(&to)?;
            if fs::symlink_metadata(&dst).is_ok() {
                return Err(LibraryError::FileExists(to.to_string()));
            }
            if let Some(parent) = to.parent() {
                lib.ensure_folder(&parent)?;
            }
            match rename_noreplace(&src, &dst) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(LibraryError::FileExists(to.to_string()))
                }
                other => other.map_err(|e| not_found_as(e, LibraryError::FileNotFound))?,
            }
            let (meta_src, meta_dst) =
                (lib.layout().meta_file(&from)?, lib.layout().meta_file(&to)?);
            let moved_meta = meta_dst
                .parent()
                .map_or(Ok(()), fs::create_dir_all)
                .and_then(|_| fs::rename(&meta_src, &meta_dst));
            if let Err(e) = moved_meta {
                // Put the file back so it keeps its meta.
                let _ = fs::rename(&dst, &src);
                return Err(io::Error::new(e.kind(), format!("moving meta: {e}")).into());
            }
            atomic::sync_dir(dst.parent().unwrap_or(&dst))?;
            let mut hashes = lib.hashes();
            hashes.remove(&from);
            if let Some(h) = entry.hash() {
                hashes.set(&to, h);
            }
            drop(hashes);
            lib.changed(Change::File(from));
            lib.changed(Change::File(to.clone()));
            Ok(Entry { path: to, ..entry })
        })
        .await
    }

    /// Copies a file with its meta; the copy gets a new uuid.
    pub async fn copy_file(&self, from: &MediaPath, to: &MediaPath) -> Result<Entry> {
        let _guard = self.inner.locks.files(&[from, to]).await;
        let (from, to) = (from.clone(), to.clone());
        self.blocking(move |lib| {
            let entry = lib.refresh(&from)?;
            let dst = lib.layout().file(&to)?;
            if from == to || fs::symlink_metadata(&dst).is_ok() {
                return Err(LibraryError::FileExists(to.to_string()));
            }
            if let Some(parent) = to.parent() {
                lib.ensure_folder(&parent)?;
            }
            let dir = dst.parent().unwrap_or(&dst);
            let tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .tempfile_in(dir)?
                .into_temp_path();
            fs::copy(lib.layout().file(&from)?, &tmp)?;
            fs::File::open(&tmp)?.sync_all()?;
            match rename_noreplace(&tmp, &dst) {
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    return Err(LibraryError::FileExists(to.to_string()))
                }
                other => other?,
            }
            // The temp path is now the copy's name: keep it from being removed.
            let _ = tmp.keep();
            let placed = Cleanup::new(dst.clone());
            let md = fs::metadata(&dst)?;
            let mut m = entry.meta.clone();
            m.insert("uuid".into(), uuid::Uuid::now_v7().to_string().into());
            m.insert("uploaded_on".into(), now_secs().into());
            m.insert(
                "modified_on".into(),
                meta::seconds_value(super::mtime_secs(md.modified()?)),
            );
            meta::write(&lib.layout().meta_file(&to)?, &m)?;
            placed.disarm();
            lib.index_set(&to, &m);
            Ok(Entry {
                path: to,
                meta: m,
                size: md.len(),
                modified: md.modified()?,
                meta_broken: false,
            })
        })
        .await
    }

    /// Deletes a file and its meta.
    pub async fn delete_file(&self, p: &MediaPath) -> Result<()> {
        let _guard = self.inner.locks.files(&[p]).await;
        let p = p.clone();
        self.blocking(move |lib| {
            lib.stat_file(&p)?;
            let path = lib.layout().file(&p)?;
            // The file goes first: a crash in between leaves an orphaned meta, never a file
            // that lost its editors' fields.
            fs::remove_file(&path).map_err(|e| not_found_as(e, LibraryError::FileNotFound))?;
            match fs::remove_file(lib.layout().meta_file(&p)?) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => {}
            }
            lib.hashes().remove(&p);
            lib.changed(Change::File(p));
            Ok(())
        })
        .await
    }

    /// Applies one meta edit and returns the file with its new meta.
    pub async fn edit_meta(&self, p: &MediaPath, edit: MetaEdit) -> Result<Entry> {
        let _guard = self.inner.locks.files(&[p]).await;
        let p = p.clone();
        self.blocking(move |lib| {
            let mut entry = lib.refresh(&p)?;
            let meta_path = lib.layout().meta_file(&p)?;
            if let Err(meta::MetaError::Invalid { message, .. }) = meta::read(&meta_path) {
                return Err(LibraryError::BadRequest(
                    "invalid-meta",
                    format!("The meta file is not valid YAML; fix it by hand first: {message}"),
                ));
            }
            match edit {
                MetaEdit::Update(f, v) => meta::update_field(&mut entry.meta, &f, v)?,
                MetaEdit::Add(f, v) => meta::add_field(&mut entry.meta, &f, v)?,
                MetaEdit::Delete(f) => meta::delete_field(&mut entry.meta, &f)?,
            }
            meta::write_edited(&meta_path, &entry.meta).map_err(|e| match e.kind() {
                std::io::ErrorKind::FileTooLarge => {
                    LibraryError::MetaTooLarge(meta::MAX_EDITED_META_BYTES)
                }
                _ => e.into(),
            })?;
            lib.changed(Change::File(p));
            Ok(entry)
        })
        .await
    }
}
