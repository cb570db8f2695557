//! The crash guarantee (SPEC §1): "a kill -9 in the middle of 40 concurrent uploads leaves no
//! torn file, no visible temp file, and every file with its meta after restart".
//!
//! The server runs as a child process over a temp project; it is killed with SIGKILL while
//! uploads are in flight, restarted over the same project, and the tree is checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
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
const CHUNK: usize = 64 * 1024;

/// Distinct text content for upload `n` of `cycle`: 256 KiB to just under 2 MiB.
fn content(cycle: usize, n: usize) -> Vec<u8> {
    let size = 256 * 1024 + n * 45 * 1024 + cycle * 7 * 1024 + n;
    let mut out = Vec::with_capacity(size + 64);
    let mut i = 0;
    while out.len() < size {
        out.extend_from_slice(format!("cycle {cycle} file {n} line {i}\n").as_bytes());
        i += 1;
    }
    out.truncate(size);
    out
}

/// One upload as a client sends it: tokens and folder first, then the file. Odd uploads
/// stream their body in small chunks with pauses, so some are still arriving at the kill.
async fn upload_one(
    client: reqwest::Client,
    url: String,
    tokens: (String, String),
    folder: String,
    name: String,
    bytes: Arc<Vec<u8>>,
    slow: bool,
) -> Result<StatusCode, reqwest::Error> {
    let part = if slow {
        let chunks: Vec<Bytes> = bytes.chunks(CHUNK).map(Bytes::copy_from_slice).collect();
        let stream = futures_util::stream::iter(chunks).then(|c| async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok::<Bytes, std::io::Error>(c)
        });
        Part::stream_with_length(reqwest::Body::wrap_stream(stream), bytes.len() as u64)
    } else {
        Part::bytes(bytes.to_vec())
    };
    let form = Form::new()
        .text("token", tokens.0)
        .text("access_token", tokens.1)
        .text("folder", folder)
        .part("file", part.file_name(name));
    Ok(client.post(url).multipart(form).send().await?.status())
}

/// Regular files below `uploads/`, outside `.meta` and `.staging`, by path relative to it.
fn files_on_disk(uploads: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir::WalkDir::new(uploads)
        .into_iter()
        .filter_entry(|e| {
            e.depth() == 0 || (e.file_name() != ".meta" && e.file_name() != ".staging")
        })
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let rel = e
                .path()
                .strip_prefix(uploads)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (rel, std::fs::read(e.path()).unwrap_or_default())
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

    let temps = temp_files(project);
    assert!(
        temps.is_empty(),
        "temp files remain after restart: {temps:?}"
    );
    let staging: Vec<_> = std::fs::read_dir(uploads.join(".staging"))
        .map(|r| r.filter_map(Result::ok).map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(staging.is_empty(), "staging is not empty: {staging:?}");

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
        let hash = blake3_hex(bytes);
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
        assert_eq!(body["data"]["hash"], hash, "GET {rel}: {body}");

        let meta_file = uploads.join(".meta").join(format!("{rel}.yaml"));
        let text = std::fs::read_to_string(&meta_file)
            .unwrap_or_else(|e| panic!("no meta for {rel} at {}: {e}", meta_file.display()));
        let meta: serde_yaml::Value = serde_yaml::from_str(&text)
            .unwrap_or_else(|e| panic!("meta of {rel} is not YAML ({e}): {text}"));
        assert_eq!(
            meta["hash"].as_str(),
            Some(hash.as_str()),
            "meta of {rel}: {text}"
        );
        assert_eq!(
            meta["filesize"].as_u64(),
            Some(bytes.len() as u64),
            "meta of {rel}: {text}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_during_40_concurrent_uploads_leaves_no_torn_or_temp_file_and_all_meta_after_restart(
) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let (files, access) = precreate_tokens(&project);
    let mut server = serve(d, &project, "start-0", "", &[]).await;
    server.wait_reconciled().await;

    let mut expected: HashMap<String, Vec<u8>> = HashMap::new();
    let mut acked: BTreeSet<String> = BTreeSet::new();

    for cycle in 0..CYCLES {
        let folder = format!("cycle-{cycle}");
        let client = reqwest::Client::new();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut tasks = Vec::new();
        // All contents are made first, so the uploads start together.
        let contents: Vec<Arc<Vec<u8>>> =
            (0..UPLOADS).map(|n| Arc::new(content(cycle, n))).collect();
        for (n, bytes) in contents.into_iter().enumerate() {
            let name = format!("f-{n}.txt");
            expected.insert(format!("{folder}/{name}"), bytes.to_vec());
            let job = upload_one(
                client.clone(),
                server.url("/api/files"),
                (files.clone(), access.clone()),
                folder.clone(),
                name,
                bytes,
                n % 2 == 1,
            );
            let tx = tx.clone();
            tasks.push(tokio::spawn(async move {
                let r = job.await;
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
        check_after_restart(&server, &files, &project, &expected, &acked).await;
    }

    drop(server);
    eprintln!("crash test took {:?}", started.elapsed());
}
