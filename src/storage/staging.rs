//! Streaming an incoming file to a staging temp file while hashing it.
//!
//! Chunks go over a bounded channel to one blocking thread that hashes and writes them, so the
//! async workers never block on disk and memory stays flat whatever the file size. The staged
//! file is removed when dropped unless it was taken over by the library.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use tokio::sync::mpsc;

use super::atomic::{Cleanup, TEMP_PREFIX};
use crate::hashing::ContentHash;
use crate::sniff::HEAD_LEN;

/// Chunks in flight between the request and the writer thread.
const QUEUE: usize = 32;

/// A fully received, hashed and fsynced file waiting in the staging folder.
pub struct Staged {
    pub file: Cleanup,
    pub hash: ContentHash,
    pub size: u64,
    /// The first bytes, for sniffing the content type.
    pub head: Vec<u8>,
}

impl Staged {
    pub fn path(&self) -> &Path {
        self.file.path()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StageError {
    #[error("file is larger than {0} bytes")]
    TooLarge(u64),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Receives chunks of one incoming file.
pub struct StagingWriter {
    tx: Option<mpsc::Sender<Bytes>>,
    worker: tokio::task::JoinHandle<io::Result<(ContentHash, u64)>>,
    path: Cleanup,
    size: u64,
    limit: u64,
    head: Vec<u8>,
}

impl StagingWriter {
    /// Starts a new staging file in `dir`; files over `limit` bytes are refused.
    pub fn create(dir: &Path, limit: u64) -> io::Result<StagingWriter> {
        let (file, path) = tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(dir)
            .and_then(|t| t.keep().map_err(|e| e.error))
            .map_err(|e| io::Error::new(e.kind(), format!("staging in {}: {e}", dir.display())))?;
        let cleanup = Cleanup::new(path);
        let (tx, rx) = mpsc::channel(QUEUE);
        let worker = tokio::task::spawn_blocking(move || write_all(file, rx));
        Ok(StagingWriter {
            tx: Some(tx),
            worker,
            path: cleanup,
            size: 0,
            limit,
            head: Vec::new(),
        })
    }

    pub async fn write(&mut self, chunk: Bytes) -> Result<(), StageError> {
        self.size += chunk.len() as u64;
        if self.size > self.limit {
            return Err(StageError::TooLarge(self.limit));
        }
        if self.head.len() < HEAD_LEN {
            let take = (HEAD_LEN - self.head.len()).min(chunk.len());
            self.head.extend_from_slice(&chunk[..take]);
        }
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| io::Error::other("writer closed"))?;
        if tx.send(chunk).await.is_err() {
            // The writer stopped early: its error says why.
            return Err(self.fail().await);
        }
        Ok(())
    }

    async fn fail(&mut self) -> StageError {
        self.tx = None;
        match (&mut self.worker).await {
            Ok(Err(e)) => e.into(),
            Ok(Ok(_)) => io::Error::other("staging writer stopped").into(),
            Err(e) => io::Error::other(e).into(),
        }
    }

    /// Waits for the last chunk to be written and synced.
    pub async fn finish(mut self) -> Result<Staged, StageError> {
        self.tx = None;
        let (hash, size) = (&mut self.worker).await.map_err(io::Error::other)??;
        debug_assert_eq!(size, self.size);
        Ok(Staged {
            file: self.path,
            hash,
            size,
            head: self.head,
        })
    }

    pub fn path(&self) -> PathBuf {
        self.path.path().to_path_buf()
    }
}

fn write_all(mut file: File, mut rx: mpsc::Receiver<Bytes>) -> io::Result<(ContentHash, u64)> {
    let mut hasher = blake3::Hasher::new();
    let mut total = 0u64;
    while let Some(chunk) = rx.blocking_recv() {
        hasher.update(&chunk);
        file.write_all(&chunk)?;
        total += chunk.len() as u64;
    }
    file.sync_all()?;
    Ok((hasher.finalize().into(), total))
}
