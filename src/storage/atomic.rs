//! Crash-safe writes: temp file in the same folder, fsync, rename, fsync the folder.
//!
//! Every temp file and temp folder this crate creates carries [`TEMP_PREFIX`], so a start-up
//! sweep can remove what a crash left behind. Nothing here knows what the bytes mean.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Prefix of every temp file the server writes; dot-leading, so never listed or served.
pub const TEMP_PREFIX: &str = ".flextype-tmp-";

fn with_path(e: io::Error, what: &str, p: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", p.display()))
}

/// Writes `bytes` to `path` atomically, creating missing parent folders.
pub fn write(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).map_err(|e| with_path(e, "creating", dir))?;
    let mut tmp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)
        .map_err(|e| with_path(e, "creating a temp file in", dir))?;
    tmp.write_all(bytes)
        .and_then(|_| tmp.as_file().sync_all())
        .map_err(|e| with_path(e, "writing", tmp.path()))?;
    tmp.persist(path)
        .map_err(|e| with_path(e.error, "renaming into", path))?;
    sync_dir(dir)
}

/// Flushes a folder's entries, so a rename in it survives a power cut.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| with_path(e, "syncing", dir))?;
    Ok(())
}

/// Renames `from` to `to`, failing with `AlreadyExists` instead of replacing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
        };
        let (f, t) = (c(from)?, c(to)?);
        // SAFETY: both are valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                f.as_ptr(),
                libc::AT_FDCWD,
                t.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        // Filesystems without RENAME_NOREPLACE fall through to the portable way.
        if err.raw_os_error() != Some(libc::EINVAL) {
            return Err(err);
        }
    }
    if fs::symlink_metadata(to).is_ok() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            "target exists",
        ));
    }
    fs::rename(from, to)
}

/// Makes a new empty folder with a temp name inside `dir`, for building something out of
/// sight before it is renamed into place.
pub fn temp_dir_in(dir: &Path) -> io::Result<PathBuf> {
    tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempdir_in(dir)
        .map(tempfile::TempDir::keep)
        .map_err(|e| with_path(e, "creating a temp folder in", dir))
}

/// Renames `path` to a new temp name in its folder, out of sight (and removed by the start-up
/// sweep if nothing else removes it); returns the new path.
pub fn rename_out_of_sight(path: &Path) -> io::Result<PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tries = 0;
    loop {
        let hidden = dir.join(format!("{TEMP_PREFIX}{:016x}", rand::random::<u64>()));
        match rename_noreplace(path, &hidden) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 16 => tries += 1,
            other => return other.map(|_| hidden),
        }
    }
}

/// A path that is removed when the guard drops, unless [`Cleanup::disarm`] was called.
///
/// Multi-step operations hold one so that a failure half-way leaves nothing behind.
pub struct Cleanup {
    path: Option<PathBuf>,
}

impl Cleanup {
    pub fn new(path: PathBuf) -> Self {
        Cleanup { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or(Path::new(""))
    }

    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(&p);
        }
    }
}

/// Removes temp files and temp folders a crash left anywhere below `root`; returns how many.
pub fn sweep_stale(root: &Path) -> usize {
    let mut removed = 0;
    let mut walk = walkdir::WalkDir::new(root).follow_links(false).into_iter();
    while let Some(entry) = walk.next() {
        let Ok(e) = entry else { continue };
        if e.depth() == 0 || !e.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
            continue;
        }
        let gone = if e.file_type().is_dir() {
            walk.skip_current_dir();
            fs::remove_dir_all(e.path())
        } else if e.file_type().is_file() {
            fs::remove_file(e.path())
        } else {
            continue;
        };
        removed += usize::from(gone.is_ok());
    }
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.yaml");
        write(&p, b"one").unwrap();
        write(&p, b"two").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::read_dir(p.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn noreplace_refuses_existing_target() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        fs::write(&a, "a").unwrap();
        fs::write(&b, "b").unwrap();
        let err = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&b).unwrap(), b"b");
    }

    #[test]
    fn sweep_removes_only_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("x")).unwrap();
        fs::write(dir.path().join("x").join(format!("{TEMP_PREFIX}abc")), "").unwrap();
        fs::write(dir.path().join("x/keep"), "").unwrap();
        assert_eq!(sweep_stale(dir.path()), 1);
        assert!(dir.path().join("x/keep").exists());
    }

    #[test]
    fn sweep_removes_a_temp_folder_with_what_it_holds() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = temp_dir_in(dir.path()).unwrap();
        fs::create_dir_all(tmp.join("a/b")).unwrap();
        fs::write(tmp.join("a/b/file.jpg"), "x").unwrap();
        fs::write(dir.path().join("keep.jpg"), "").unwrap();
        assert_eq!(sweep_stale(dir.path()), 1);
        assert!(!tmp.exists());
        assert!(dir.path().join("keep.jpg").exists());
    }

    #[test]
    fn out_of_sight_renames_to_a_new_temp_name_beside() {
        let dir = tempfile::tempdir().unwrap();
        let folder = dir.path().join("folder");
        fs::create_dir_all(folder.join("sub")).unwrap();
        let hidden = rename_out_of_sight(&folder).unwrap();
        assert!(!folder.exists());
        assert_eq!(hidden.parent(), Some(dir.path()));
        assert!(hidden.join("sub").is_dir());
        let name = hidden.file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with(TEMP_PREFIX), "{name}");
    }
}
