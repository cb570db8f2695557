//! A kill -9 in the middle of a folder copy or a folder delete: after the restart the copy is
//! whole or absent, the folder whole or gone (found by the crash rounds: both were left
//! half-done, as they worked file by file in place).

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use super::*;
use crate::cli::{precreate_tokens, serve, Served};

/// Watching on (orphaned meta expires only then), with a short grace.
const CONFIG: &str = "watch: { enabled: true, orphan_grace_s: 1 }\n";

/// Puts `n` files of `size` bytes below `folder`, in a few sub-folders, by hand.
fn put_files(uploads: &Path, folder: &str, n: usize, size: usize) {
    for i in 0..n {
        let p = uploads.join(folder).join(format!("s{}/f{i}.txt", i % 4));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let content = Content { id: i as u64, size };
        std::fs::write(p, content.bytes()).unwrap();
    }
}

/// The files below `folder`, each checked to be whole and with meta describing it.
fn whole_files_below(uploads: &Path, folder: &str) -> usize {
    let files = files_on_disk(uploads);
    let below: Vec<_> = files
        .iter()
        .filter(|(rel, _)| rel.starts_with(&format!("{folder}/")))
        .collect();
    for (rel, bytes) in &below {
        let content = Content::named_by(bytes).unwrap_or_else(|| panic!("{rel} is torn"));
        assert!(content.is(bytes), "{rel} is torn");
        meta_describing(uploads, rel, bytes);
    }
    below.len()
}

/// Sends a folder call, kills the server as soon as `started` says the call is under way,
/// restarts it and returns it; `None` when the call was answered first.
async fn kill_during(
    dir: &Path,
    project: &Path,
    tag: &str,
    call: impl FnOnce(&Served) -> reqwest::RequestBuilder,
    started: impl Fn() -> bool,
) -> Option<Served> {
    let mut server = serve(dir, project, &format!("{tag}-before"), CONFIG, &[]).await;
    server.wait_reconciled().await;
    let request = tokio::spawn(call(&server).send());
    let deadline = Instant::now() + Duration::from_secs(60);
    while !started() {
        if request.is_finished() {
            let answer = request.await.unwrap().map(|r| r.status());
            eprintln!("{tag}: answered before it could be cut off: {answer:?}");
            return None;
        }
        assert!(Instant::now() < deadline, "{tag}: the call never started");
        tokio::time::sleep(Duration::from_micros(200)).await;
    }
    server.child.kill_now();
    let answer = request.await.unwrap().map(|r| r.status());
    assert!(answer.is_err(), "{tag}: answered {answer:?} at the kill");
    let server = serve(dir, project, &format!("{tag}-after"), CONFIG, &[]).await;
    server.wait_reconciled().await;
    Some(server)
}

/// Waits until no meta is left without its file, and checks that no temp file is left.
async fn settled(project: &Path) {
    let uploads = project.join("uploads");
    until(
        "orphaned meta to be removed",
        Duration::from_secs(60),
        || async {
            let metas = metas_on_disk(&uploads);
            let files = paths_on_disk(&uploads);
            metas.is_subset(&files).then_some(())
        },
    )
    .await;
    assert_no_temp_files(project);
}

/// A folder call with both tokens in its JSON body.
fn folder_call(
    server: &Served,
    method: reqwest::Method,
    route: &str,
    tokens: &Tokens,
    mut body: Value,
) -> reqwest::RequestBuilder {
    body["token"] = json!(tokens.0);
    body["access_token"] = json!(tokens.1);
    server.client.request(method, server.url(route)).json(&body)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_during_a_folder_copy_leaves_the_copy_whole_or_absent() {
    const FILES: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let tokens = precreate_tokens(&project);
    let uploads = project.join("uploads");
    put_files(&uploads, "src", FILES, 64 * 1024);

    // A few tries, as the call may be answered before it is seen under way; two cuts suffice.
    let mut cut = 0;
    for attempt in 0..5 {
        if cut == 2 {
            break;
        }
        let to = format!("copy-{attempt}");
        let call = |server: &Served| {
            let body = json!({ "path": "src", "new_path": to });
            folder_call(
                server,
                reqwest::Method::PUT,
                "/api/folders/copy",
                &tokens,
                body,
            )
        };
        // Under way once a file of the copy exists, in place or out of sight.
        let started = || {
            paths_on_disk(&uploads)
                .iter()
                .any(|p| p.starts_with(&format!("{to}/")) || p.starts_with(".flextype-tmp-"))
        };
        let Some(server) = kill_during(d, &project, &to, call, started).await else {
            continue;
        };
        cut += 1;
        let copied = whole_files_below(&uploads, &to);
        assert!(
            copied == 0 || copied == FILES,
            "a copy cut off by the kill left {copied} of {FILES} files"
        );
        settled(&project).await;
        assert_eq!(whole_files_below(&uploads, "src"), FILES);
        let res = server
            .client
            .get(server.url("/api/files"))
            .query(&[
                ("path", to.as_str()),
                ("recursive", "true"),
                ("token", &tokens.0),
            ])
            .send()
            .await
            .unwrap();
        let listed = match res.status() {
            StatusCode::OK => res.json::<Value>().await.unwrap()["data"]
                .as_object()
                .unwrap()
                .len(),
            _ => 0,
        };
        assert_eq!(
            listed, copied,
            "the API lists other files than the disk holds"
        );
    }
    assert!(cut > 0, "no copy was ever cut off");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_kill_9_during_a_folder_delete_leaves_the_folder_whole_or_gone() {
    const FILES: usize = 800;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let project = d.join("project");
    let tokens = precreate_tokens(&project);
    let uploads = project.join("uploads");

    // A few tries, as the call may be answered before it is seen under way; two cuts suffice.
    let mut cut = 0;
    for attempt in 0..5 {
        if cut == 2 {
            break;
        }
        let folder = format!("old-{attempt}");
        put_files(&uploads, &folder, FILES, MIN_SIZE);
        let call = |server: &Served| {
            let body = json!({ "path": folder, "recursive": true });
            folder_call(
                server,
                reqwest::Method::DELETE,
                "/api/folders",
                &tokens,
                body,
            )
        };
        let dir_path = uploads.join(&folder);
        // Under way once a file of the folder is gone.
        let started = || {
            walkdir::WalkDir::new(&dir_path)
                .into_iter()
                .filter_map(Result::ok)
                .filter(|e| e.file_type().is_file())
                .count()
                < FILES
        };
        let Some(_server) = kill_during(d, &project, &folder, call, started).await else {
            continue;
        };
        cut += 1;
        let left = whole_files_below(&uploads, &folder);
        assert!(
            left == 0 || left == FILES,
            "a folder delete cut off by the kill left {left} of {FILES} files"
        );
        settled(&project).await;
    }
    assert!(cut > 0, "no delete was ever cut off");
}
