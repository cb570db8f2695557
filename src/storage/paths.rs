//! Media paths and the project layout: the only place that turns user input into a filesystem
//! path, and so the only place that checks containment.
//!
//! A [`MediaPath`] can only hold plain name components (no `..`, no dot-names, no separators or
//! control characters, no partial-download names). [`Layout::file`] and friends join it to the
//! uploads root and refuse any path that leads through a symlink out of the tree or into the
//! `.meta` mirror. Nothing here reads or writes file contents.

use std::ffi::OsStr;
use std::fmt;
use std::io;
use std::path::{Component, Path, PathBuf};

/// The name of the meta mirror folder inside `uploads/`.
pub const META_DIR: &str = ".meta";
/// The extension appended to a file's name to name its meta file.
pub const META_EXT: &str = "yaml";
/// The longest name component, in bytes: a file's meta file is named `<name>.yaml`, and
/// that name must fit in the 255 bytes filesystems allow.
pub const MAX_NAME_BYTES: usize = 255 - META_EXT.len() - 1;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("Path must be relative to the uploads folder (no leading '/')")]
    Absolute,
    #[error("Path has an empty component")]
    EmptyComponent,
    #[error("Path component '{0}' starts with a dot")]
    DotName(String),
    #[error("Path contains a backslash")]
    Backslash,
    #[error("Path contains a control character")]
    ControlChar,
    #[error("'{0}' is a partial-download name")]
    PartialName(String),
    #[error("Path component is longer than {MAX_NAME_BYTES} bytes")]
    TooLong,
    #[error("Path leads outside the uploads folder")]
    Escapes,
}

/// A path relative to `uploads/`, made of plain name components only; the empty path is the
/// root folder.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MediaPath(String);

impl MediaPath {
    pub fn root() -> MediaPath {
        MediaPath(String::new())
    }

    /// Parses a path as sent by a client: `''` or `'/'` is the root; a trailing `/` is allowed.
    pub fn parse(input: &str) -> Result<MediaPath, PathError> {
        if input.is_empty() || input == "/" {
            return Ok(MediaPath::root());
        }
        if input.starts_with('/') {
            return Err(PathError::Absolute);
        }
        let trimmed = input.strip_suffix('/').unwrap_or(input);
        for part in trimmed.split('/') {
            check_name(part)?;
        }
        Ok(MediaPath(trimmed.to_string()))
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last component; empty for the root.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or("")
    }

    /// The folder holding this path; `None` for the root.
    pub fn parent(&self) -> Option<MediaPath> {
        if self.is_root() {
            return None;
        }
        Some(match self.0.rfind('/') {
            Some(i) => MediaPath(self.0[..i].to_string()),
            None => MediaPath::root(),
        })
    }

    /// This path with one more component.
    pub fn join(&self, name: &str) -> Result<MediaPath, PathError> {
        check_name(name)?;
        Ok(if self.is_root() {
            MediaPath(name.to_string())
        } else {
            MediaPath(format!("{}/{}", self.0, name))
        })
    }

    /// Whether `self` is `base` or lies inside it.
    pub fn starts_with(&self, base: &MediaPath) -> bool {
        base.is_root()
            || self.0 == base.0
            || (self.0.starts_with(&base.0) && self.0.as_bytes().get(base.0.len()) == Some(&b'/'))
    }

    /// The part of `self` below `base` (`""` when equal).
    pub fn relative_to(&self, base: &MediaPath) -> Option<&str> {
        if !self.starts_with(base) {
            None
        } else if base.is_root() {
            Some(&self.0)
        } else if self.0.len() == base.0.len() {
            Some("")
        } else {
            Some(&self.0[base.0.len() + 1..])
        }
    }

    /// `self` with the prefix `from` replaced by `to`.
    pub fn rebase(&self, from: &MediaPath, to: &MediaPath) -> Option<MediaPath> {
        let rest = self.relative_to(from)?;
        Some(if rest.is_empty() {
            to.clone()
        } else if to.is_root() {
            MediaPath(rest.to_string())
        } else {
            MediaPath(format!("{}/{}", to.0, rest))
        })
    }

    /// Builds a media path from a filesystem path relative to the uploads root, refusing
    /// anything a client could not have named (dot-files, partial downloads, non-UTF-8).
    pub fn from_relative(rel: &Path) -> Option<MediaPath> {
        let mut parts = Vec::new();
        for c in rel.components() {
            match c {
                Component::Normal(n) => parts.push(n.to_str()?),
                _ => return None,
            }
        }
        let joined = parts.join("/");
        MediaPath::parse(&joined).ok().filter(|p| !p.is_root())
    }
}

impl fmt::Display for MediaPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks one name component.
pub fn check_name(name: &str) -> Result<(), PathError> {
    if name.is_empty() {
        return Err(PathError::EmptyComponent);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(PathError::TooLong);
    }
    if name.starts_with('.') {
        return Err(PathError::DotName(name.to_string()));
    }
    if name.contains('\\') {
        return Err(PathError::Backslash);
    }
    if name.chars().any(char::is_control) {
        return Err(PathError::ControlChar);
    }
    if name.contains('/') {
        return Err(PathError::EmptyComponent);
    }
    if is_partial_name(name) {
        return Err(PathError::PartialName(name.to_string()));
    }
    Ok(())
}

/// Names that are never listed, indexed or served: dot-files and partial downloads.
pub fn is_hidden_name(name: &OsStr) -> bool {
    match name.to_str() {
        Some(n) => n.starts_with('.') || is_partial_name(n),
        None => true,
    }
}

fn is_partial_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower.ends_with(".part")
        || lower.ends_with(".crdownload")
        || lower.ends_with(".tmp")
        || name.starts_with("~$")
}

/// Where everything of a project lives on disk.
#[derive(Debug, Clone)]
pub struct Layout {
    pub project: PathBuf,
    /// Canonical path of `project/uploads`.
    pub uploads: PathBuf,
    /// `uploads/.meta`.
    pub meta: PathBuf,
    pub tokens: PathBuf,
    pub cache: PathBuf,
    /// `uploads/.staging`: uploads stream here before they are renamed into place.
    pub staging: PathBuf,
}

impl Layout {
    /// Opens a project folder, creating the folders that are missing.
    pub fn open(project: &Path) -> io::Result<Layout> {
        for sub in [
            "uploads/.meta",
            "uploads/.staging",
            "tokens/files",
            "tokens/access",
            "cache",
        ] {
            let dir = project.join(sub);
            std::fs::create_dir_all(&dir).map_err(|e| {
                io::Error::new(e.kind(), format!("creating {}: {e}", dir.display()))
            })?;
        }
        let project = project.canonicalize()?;
        let uploads = project.join("uploads").canonicalize()?;
        Ok(Layout {
            meta: uploads.join(META_DIR),
            staging: uploads.join(".staging"),
            tokens: project.join("tokens"),
            cache: project.join("cache"),
            project,
            uploads,
        })
    }

    /// The on-disk path of a media path, checked to stay inside `uploads/`.
    pub fn file(&self, p: &MediaPath) -> Result<PathBuf, PathError> {
        contained(
            &self.uploads,
            p.as_str(),
            &[self.meta.as_path(), self.staging.as_path()],
        )
    }

    /// The meta file of a media file: `uploads/.meta/<path>.yaml`.
    pub fn meta_file(&self, p: &MediaPath) -> Result<PathBuf, PathError> {
        let rel = format!("{}.{META_EXT}", p.as_str());
        contained(&self.meta, &rel, &[])
    }

    /// The meta twin of a folder: `uploads/.meta/<path>`.
    pub fn meta_folder(&self, p: &MediaPath) -> Result<PathBuf, PathError> {
        contained(&self.meta, p.as_str(), &[])
    }

    /// The media path of an on-disk path inside `uploads/`, if a client could name it.
    pub fn media_path_of(&self, abs: &Path) -> Option<MediaPath> {
        MediaPath::from_relative(abs.strip_prefix(&self.uploads).ok()?)
    }
}

/// Joins `rel` (already made of checked components) to `base` and refuses it when an existing
/// prefix of it is a symlink that resolves outside `base` or into one of `forbidden`.
fn contained(base: &Path, rel: &str, forbidden: &[&Path]) -> Result<PathBuf, PathError> {
    let mut current = base.to_path_buf();
    if rel.is_empty() {
        return Ok(current);
    }
    for part in rel.split('/') {
        current.push(part);
        match std::fs::symlink_metadata(&current) {
            Ok(m) if m.file_type().is_symlink() => {
                let target = current.canonicalize().map_err(|_| PathError::Escapes)?;
                if !target.starts_with(base) || forbidden.iter().any(|f| target.starts_with(f)) {
                    return Err(PathError::Escapes);
                }
            }
            Ok(_) => {}
            // The rest does not exist yet: it will be created as plain folders and files.
            Err(_) => break,
        }
    }
    current.clear();
    current.push(base);
    current.extend(rel.split('/'));
    Ok(current)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_paths() {
        assert_eq!(
            MediaPath::parse("a/b c/é.jpg").unwrap().as_str(),
            "a/b c/é.jpg"
        );
        assert!(MediaPath::parse("").unwrap().is_root());
        assert!(MediaPath::parse("/").unwrap().is_root());
        assert_eq!(MediaPath::parse("a/b/").unwrap().as_str(), "a/b");
    }

    #[test]
    fn refuses_escapes() {
        for bad in [
            "../x",
            "a/../x",
            "/etc/passwd",
            "a//b",
            ".meta/x.yaml",
            "a/.hidden",
            "a\\b",
            "a\0b",
            "a\nb",
            "x.part",
            "x.crdownload",
            "x.TMP",
            "~$doc.docx",
            ".",
            "a/./b",
            "//",
        ] {
            assert!(MediaPath::parse(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn relations() {
        let a = MediaPath::parse("a/b").unwrap();
        let f = MediaPath::parse("a/b/c.jpg").unwrap();
        let ab = MediaPath::parse("a/bc").unwrap();
        assert!(f.starts_with(&a));
        assert!(!ab.starts_with(&a));
        assert_eq!(f.relative_to(&a), Some("c.jpg"));
        assert_eq!(f.parent().unwrap(), a);
        assert_eq!(f.name(), "c.jpg");
        let to = MediaPath::parse("z").unwrap();
        assert_eq!(f.rebase(&a, &to).unwrap().as_str(), "z/c.jpg");
    }

    #[test]
    fn name_too_long_for_its_meta_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::open(&dir.path().join("project")).unwrap();
        let longest = MediaPath::parse(&"n".repeat(MAX_NAME_BYTES)).unwrap();
        std::fs::write(layout.file(&longest).unwrap(), b"x").unwrap();
        std::fs::write(layout.meta_file(&longest).unwrap(), b"title: x\n").unwrap();
        for len in [MAX_NAME_BYTES + 1, 255] {
            assert_eq!(
                MediaPath::parse(&format!("a/{}", "n".repeat(len))),
                Err(PathError::TooLong)
            );
        }
    }

    #[cfg(unix)]
    #[test]
    fn symlink_out_of_tree_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let layout = Layout::open(&dir.path().join("project")).unwrap();
        std::os::unix::fs::symlink(outside.path(), layout.uploads.join("out")).unwrap();
        std::fs::create_dir(layout.uploads.join("in")).unwrap();
        std::os::unix::fs::symlink(layout.uploads.join("in"), layout.uploads.join("alias"))
            .unwrap();
        std::os::unix::fs::symlink(&layout.meta, layout.uploads.join("m")).unwrap();
        let p = |s: &str| MediaPath::parse(s).unwrap();
        assert_eq!(layout.file(&p("out/x")), Err(PathError::Escapes));
        assert_eq!(layout.file(&p("m/x.yaml")), Err(PathError::Escapes));
        assert!(layout.file(&p("alias/x")).is_ok());
    }
}
