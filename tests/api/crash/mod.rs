//! The crash guarantee (SPEC §1): "a crash at any moment leaves either the old or the new
//! version, never a torn one", and a kill -9 loses nothing that was acknowledged.
//!
//! The server runs as a child process over a temp project; it is killed with SIGKILL while
//! requests are in flight, restarted over the same project, and the tree is checked. This
//! module holds the short test (40 concurrent uploads, three kills) and what both tests
//! share; `rounds` is the long randomised one (ignored by default: `bench/crash.sh`).

mod folders;
mod model;
mod rounds;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::Value;

use crate::cli::{precreate_tokens, serve, Served};
use crate::helpers::*;

const UPLOADS: usize = 40;
const CYCLES: usize = 3;
/// Chunk size and pause of an upload streamed slowly.
const SLOW_CHUNK: usize = 16 * 1024;
const SLOW_PAUSE: Duration = Duration::from_millis(1);

/// Which bytes a file should hold: content is derived from an id and a size, and names both
/// in its first line, so any file found on disk tells which upload it came from and whether
/// it is whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Content {
    pub id: u64,
    pub size: usize,
}

/// Content is never shorter than this, so the first line always fits.
pub const MIN_SIZE: usize = 64;

impl Content {
    /// The text bytes of this content: a header line, then numbered lines, cut at `size`.
    pub fn bytes(self) -> Vec<u8> {
        use std::io::Write;
        let size = self.size.max(MIN_SIZE);
        let mut out = Vec::with_capacity(size + 64);
        writeln!(out, "crash-content {} {}", self.id, size).unwrap();
        let mut i = 0u64;
        while out.len() < size {
            writeln!(out, "{} line {i}", self.id).unwrap();
            i += 1;
        }
        out.truncate(size);
        out
    }

    /// The content a file's bytes claim to be, from their first line.
    pub fn named_by(bytes: &[u8]) -> Option<Content> {
        let head = bytes.split(|&b| b == b'\n').next()?;
        let head = std::str::from_utf8(head).ok()?;
        let mut words = head.strip_prefix("crash-content ")?.split(' ');
        let id = words.next()?.parse().ok()?;
        let size = words.next()?.parse().ok()?;
        Some(Content { id, size })
    }

    /// Whether `bytes` are exactly this content; a torn file fails this.
    pub fn is(self, bytes: &[u8]) -> bool {
        bytes.len() == self.size.max(MIN_SIZE) && bytes == self.bytes().as_slice()
    }
}

/// A files token and an access token.
pub type Tokens = (String, String);

/// One upload as a client sends it: tokens, folder and `extra` fields first, then the file.
/// A `slow` upload streams its body in small chunks with pauses, so it is still arriving when
/// the server is killed.
pub async fn send_upload(
    client: &reqwest::Client,
    url: &str,
    tokens: &Tokens,
    (folder, name): (&str, &str),
    bytes: Vec<u8>,
    slow: bool,
    extra: &[(&str, &str)],
) -> Result<reqwest::Response, reqwest::Error> {
    let part = if slow {
        let len = bytes.len() as u64;
        let chunks: Vec<Bytes> = bytes
            .chunks(SLOW_CHUNK)
            .map(Bytes::copy_from_slice)
            .collect();
        let stream = futures_util::stream::iter(chunks).then(|c| async move {
            tokio::time::sleep(SLOW_PAUSE).await;
            Ok::<Bytes, std::io::Error>(c)
        });
        Part::stream_with_length(reqwest::Body::wrap_stream(stream), len)
    } else {
        Part::bytes(bytes)
    };
    let mut form = Form::new()
        .text("token", tokens.0.clone())
        .text("access_token", tokens.1.clone())
        .text("folder", folder.to_string());
    for (k, v) in extra {
        form = form.text(k.to_string(), v.to_string());
    }
    let form = form.part("file", part.file_name(name.to_string()));
    client.post(url).multipart(form).send().await
}

/// Regular files below `uploads/`, outside `.meta` and `.staging`, by path relative to it.
pub fn paths_on_disk(uploads: &Path) -> BTreeSet<String> {
    walkdir::WalkDir::new(uploads)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || (e.file_name() != ".meta" && e.file_name() != ".staging")
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e.path().strip_prefix(uploads).unwrap();
            rel.to_string_lossy().into_owned()
        })
        .collect()
}

/// [`paths_on_disk`] with each file's bytes.
pub fn files_on_disk(uploads: &Path) -> BTreeMap<String, Vec<u8>> {
    paths_on_disk(uploads)
        .into_iter()
        .map(|rel| {
            let bytes = std::fs::read(uploads.join(&rel)).unwrap_or_default();
            (rel, bytes)
        })
        .collect()
}

/// The media paths of every meta file under `uploads/.meta`.
pub fn metas_on_disk(uploads: &Path) -> BTreeSet<String> {
    let root = uploads.join(".meta");
    walkdir::WalkDir::new(&root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| {
            let rel = e.path().strip_prefix(&root).ok()?.to_string_lossy();
            rel.strip_suffix(".yaml").map(str::to_string)
        })
        .collect()
}

/// How many plain (non-dot) files a folder holds; 0 when it does not exist yet.
fn placed_in(folder: &Path) -> usize {
    std::fs::read_dir(folder)
        .map(|r| {
            r.filter_map(Result::ok)
                .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
                .count()
        })
        .unwrap_or(0)
}

/// No temp file anywhere in the project (tokens aside, see [`temp_files`]) and nothing left in
/// the staging folder.
pub fn assert_no_temp_files(project: &Path) {
    let temps = temp_files(project);
    assert!(
        temps.is_empty(),
        "temp files remain after restart: {temps:?}"
    );
    let staging: Vec<_> = std::fs::read_dir(project.join("uploads/.staging"))
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging is not empty: {staging:?}");
}

/// The meta of `rel` as JSON, checked to describe `bytes`: valid YAML, the hash and size of
/// these bytes, and a uuid.
pub fn meta_describing(uploads: &Path, rel: &str, bytes: &[u8]) -> serde_json::Map<String, Value> {
    let meta_file = uploads.join(".meta").join(format!("{rel}.yaml"));
    let text = std::fs::read_to_string(&meta_file)
        .unwrap_or_else(|e| panic!("no meta for {rel} at {}: {e}", meta_file.display()));
    let meta: serde_json::Map<String, Value> = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("meta of {rel} is not a YAML mapping ({e}): {text}"));
    assert_eq!(
        meta.get("hash").and_then(Value::as_str),
        Some(blake3_hex(bytes).as_str()),
        "meta of {rel} does not hold its hash: {text}"
    );
    assert_eq!(
        meta.get("filesize").and_then(Value::as_u64),
        Some(bytes.len() as u64),
        "meta of {rel} does not hold its size: {text}"
    );
    assert!(
        meta.get("uuid").and_then(Value::as_str).is_some(),
        "meta of {rel} has no uuid: {text}"
    );
    meta
}

/// The checks after a restart: no temp file, no torn file, every acknowledged upload whole,
/// every file with a meta whose hash matches its bytes.
async fn check_after_restart(
    server: &Served,
    files_token: &str,
    project: &Path,
    expected: &HashMap<String, Vec<u8>>,
    acked: &BTreeSet<String>,
) {
    let uploads = project.join("uploads");
    assert_no_temp_files(project);

    let on_disk = files_on_disk(&uploads);
    for (rel, bytes) in &on_disk {
        let want = expected
            .get(rel)
            .unwrap_or_else(|| panic!("a file nobody uploaded: {rel}"));
        assert!(
            bytes == want,
            "{rel} is torn: {} bytes on disk (hash {}), uploaded {} bytes (hash {})",
            bytes.len(),
            blake3_hex(bytes),
            want.len(),
            blake3_hex(want)
        );
    }
    for rel in acked {
        assert!(
            on_disk.contains_key(rel),
            "{rel} was acknowledged with 200 but is gone"
        );
    }

    for (rel, bytes) in &on_disk {
        let res = server
            .client
            .get(server.url("/api/files"))
            .query(&[("path", rel.as_str()), ("token", files_token)])
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::OK, "GET {rel}: {body}");
        assert_eq!(body["data"]["hash"], blake3_hex(bytes), "GET {rel}: {body}");
        meta_describing(&uploads, rel, bytes);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_during_40_concurrent_uploads_leaves_no_torn_or_temp_file_and_all_meta_after_restart(
) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let tokens = precreate_tokens(&project);
    let mut server = serve(d, &project, "start-0", "", &[]).await;
    server.wait_reconciled().await;

    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();

    for cycle in 0..CYCLES {
        let folder = format!("cycle-{cycle}");
        let client = reqwest::Client::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // All contents are made first, so the uploads start together: 256 KiB to just
        // under 2 MiB each.
        let contents: Vec<Vec<u8>> = (0..UPLOADS)
            .map(|n| {
                let size = 256 * 1024 + n * 45 * 1024 + cycle * 7 * 1024 + n;
                let id = (cycle * UPLOADS + n) as u64;
                Content { id, size }.bytes()
            })
            .collect();
        for (n, bytes) in contents.into_iter().enumerate() {
            let name = format!("f-{n}.txt");
            expected.insert(format!("{folder}/{name}"), bytes.clone());
            let (client, url, tokens) = (client.clone(), server.url("/api/files"), tokens.clone());
            let folder = folder.clone();
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                // Odd uploads stream slowly, so some are still arriving at the kill.
                let slow = n % 2 == 1;
                let r = send_upload(&client, &url, &tokens, (&folder, &name), bytes, slow, &[])
                    .await
                    .map(|res| res.status());
                let _ = tx.send(());
                (n, r)
            }));
        }

        // Kill at a different moment each cycle: as soon as bytes are being staged, after a
        // few acknowledgements, after many.
        let folder_dir = project.join("uploads").join(&folder);
        let staging = project.join("uploads/.staging");
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut answered = 0;
        loop {
            while rx.try_recv().is_ok() {
                answered += 1;
            }
            let go = match cycle {
                0 => !temp_files(&staging).is_empty() || placed_in(&folder_dir) > 0,
                1 => answered >= 3,
                _ => answered >= 12,
            };
            if go || answered == UPLOADS {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "cycle {cycle}: uploads made no progress ({answered} answered); stderr:\n{}",
                server.child.stderr_text()
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        server.child.kill_now();

        let mut ok = 0;
        let mut failed = 0;
        for t in tasks {
            let (n, r) = tokio::time::timeout(Duration::from_secs(30), t)
                .await
                .expect("an upload hung after the kill")
                .unwrap();
            match r {
                Ok(status) => {
                    // Any answer the server gave before it died must be a success.
                    assert_eq!(status, StatusCode::OK, "cycle {cycle} upload {n}");
                    acked.insert(format!("{folder}/f-{n}.txt"));
                    ok += 1;
                }
                Err(_) => failed += 1,
            }
        }
        let uploads = project.join("uploads");
        let placed = placed_in(&folder_dir);
        let metas = placed_in(&uploads.join(".meta").join(&folder));
        let temps = temp_files(&project).len();
        eprintln!(
            "cycle {cycle}: killed with {ok} acknowledged, {failed} cut off; on disk {placed} \
             files, {metas} metas, {temps} temp files"
        );

        server = serve(d, &project, &format!("start-{}", cycle + 1), "", &[]).await;
        server.wait_reconciled().await;
        check_after_restart(&server, &tokens.0, &project, &expected, &acked).await;
    }

    drop(server);
    eprintln!("crash test took {:?}", started.elapsed());
}
