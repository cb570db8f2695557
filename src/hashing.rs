//! BLAKE3 content hashes: the identity of every file's content.
//!
//! Owns the [`ContentHash`] type and hashing of files on disk in bounded memory. Knows nothing
//! of meta files, HTTP or the index.

use std::fmt;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::str::FromStr;

/// Size of the read buffer when hashing a file.
const CHUNK: usize = 1 << 20;

/// A BLAKE3 hash of a file's content; displayed as 64 lowercase hex characters.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ContentHash(blake3::Hash);

impl ContentHash {
    pub fn of(bytes: &[u8]) -> Self {
        ContentHash(blake3::hash(bytes))
    }

    pub fn to_hex(&self) -> String {
        self.0.to_hex().to_string()
    }
}

impl From<blake3::Hash> for ContentHash {
    fn from(h: blake3::Hash) -> Self {
        ContentHash(h)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.to_hex().as_str())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({self})")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("not a content hash: expected 64 lowercase hex characters")]
pub struct BadHash;

impl FromStr for ContentHash {
    type Err = BadHash;

    fn from_str(s: &str) -> Result<Self, BadHash> {
        if s.len() != 64 || !s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(BadHash);
        }
        blake3::Hash::from_hex(s)
            .map(ContentHash)
            .map_err(|_| BadHash)
    }
}

/// Hashes a file in bounded memory; returns the hash and the number of bytes read.
pub fn hash_file(path: &Path) -> io::Result<(ContentHash, u64)> {
    let mut file = File::open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("opening {}: {e}", path.display())))?;
    // A small file needs a small buffer: zeroing 1 MiB per 4 KiB file is most of the work
    // when thousands of them are dropped at once.
    let len = file.metadata().map_or(CHUNK as u64, |m| m.len());
    let buf = usize::try_from(len.saturating_add(1)).map_or(CHUNK, |l| l.clamp(8 << 10, CHUNK));
    hash_reader_with(&mut file, buf)
        .map_err(|e| io::Error::new(e.kind(), format!("reading {}: {e}", path.display())))
}

pub fn hash_reader(reader: &mut impl Read) -> io::Result<(ContentHash, u64)> {
    hash_reader_with(reader, CHUNK)
}

fn hash_reader_with(reader: &mut impl Read, buf_len: usize) -> io::Result<(ContentHash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; buf_len];
    let mut total = 0u64;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                total += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((hasher.finalize().into(), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_bad_input() {
        let h = ContentHash::of(b"abc");
        assert_eq!(h.to_hex().parse::<ContentHash>().unwrap(), h);
        assert!("ABC".parse::<ContentHash>().is_err());
        assert!(h.to_hex().to_uppercase().parse::<ContentHash>().is_err());
    }

    #[test]
    fn file_hash_matches_in_memory_hash() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let data = vec![7u8; 3 * CHUNK + 5];
        std::fs::write(&p, &data).unwrap();
        let (h, n) = hash_file(&p).unwrap();
        assert_eq!((h, n), (ContentHash::of(&data), data.len() as u64));
    }
}
