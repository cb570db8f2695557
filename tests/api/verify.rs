//! `flextype verify [--fix]` and `flextype index rebuild`, run as child processes over a
//! project the server filled and let go of.

use reqwest::Method;
use serde_json::{json, Value};

use crate::cli::{run, write_config};
use crate::helpers::*;

/// A stopped server's project with three files, and a config file for the CLI.
async fn project() -> (TestApp, std::path::PathBuf) {
    let mut app = spawn_app().await;
    app.uploaded("photos", "sunset.png", &png(8, 8)).await;
    app.uploaded("docs", "notes.txt", b"some notes").await;
    app.uploaded("docs", "old.txt", b"old text").await;
    let res = app
        .call(
            Method::POST,
            "/api/files/meta",
            json!({ "path": "docs/notes.txt", "field": "owner", "value": "Sam" }),
        )
        .await;
    assert!(res.status().is_success());
    app.stop().await;
    let config = write_config(app.dir.path(), "cli.yaml", &app.project, 1, "");
    (app, config)
}

fn meta(app: &TestApp, rel: &str) -> serde_yaml::Mapping {
    serde_yaml::from_str(&std::fs::read_to_string(app.meta_path(rel)).unwrap()).unwrap()
}

async fn verify(
    app: &TestApp,
    config: &std::path::Path,
    extra: &[&str],
    tag: &str,
) -> (i32, String) {
    let mut args = vec!["--config", config.to_str().unwrap(), "verify"];
    args.extend_from_slice(extra);
    let (status, out, err) = run(app.dir.path(), &args, tag).await;
    (status.code().unwrap_or(-1), format!("{out}\n{err}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_passes_on_a_healthy_project() {
    let (app, config) = project().await;
    let (code, out) = verify(&app, &config, &[], "verify-ok").await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("no problems found"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_detects_a_flipped_byte_with_unchanged_size_and_mtime() {
    let (app, config) = project().await;
    let path = app.file_path("photos/sunset.png");
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);

    let (code, out) = verify(&app, &config, &[], "verify-rot").await;
    assert_eq!(code, 1, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("photos/sunset.png"))
        .unwrap_or_else(|| panic!("no finding for the file: {out}"));
    assert!(line.starts_with("corrupt"), "{line}");
    // --fix cannot repair content: it is still reported, and the recorded hash is kept.
    let before = meta(&app, "photos/sunset.png");
    let (code, out) = verify(&app, &config, &["--fix"], "verify-rot-fix").await;
    assert_eq!(code, 1, "{out}");
    assert_eq!(meta(&app, "photos/sunset.png"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_fix_repairs_changed_content_missing_and_orphaned_meta_and_the_index() {
    let (app, config) = project().await;
    // Changed while the server was down (new size and mtime).
    std::fs::write(app.file_path("docs/notes.txt"), b"notes, rewritten by hand").unwrap();
    // Dropped by hand, no meta yet.
    app.put_file("docs/new.txt", b"brand new");
    // Deleted by hand: its meta is orphaned.
    std::fs::remove_file(app.file_path("docs/old.txt")).unwrap();

    let (code, out) = verify(&app, &config, &[], "verify-report").await;
    assert_eq!(code, 1, "{out}");
    for (kind, path) in [
        ("changed", "docs/notes.txt"),
        ("missing-meta", "docs/new.txt"),
        ("orphaned-meta", "docs/old.txt"),
    ] {
        assert!(
            out.lines().any(|l| l.starts_with(kind) && l.contains(path)),
            "{kind} {path} not reported:\n{out}"
        );
    }
    assert!(
        app.meta_path("docs/old.txt").exists(),
        "a report changes nothing"
    );

    let (code, out) = verify(&app, &config, &["--fix"], "verify-fix").await;
    assert_eq!(code, 1, "problems were found, even if fixed: {out}");
    assert!(out.contains("[fixed]"), "{out}");
    let notes = meta(&app, "docs/notes.txt");
    assert_eq!(notes["owner"].as_str(), Some("Sam"), "editor fields kept");
    assert_eq!(
        notes["hash"].as_str(),
        Some(blake3_hex(b"notes, rewritten by hand").as_str())
    );
    assert!(app.meta_path("docs/new.txt").exists());
    assert!(!app.meta_path("docs/old.txt").exists());

    let (code, out) = verify(&app, &config, &[], "verify-after").await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn verify_reports_index_drift_and_fix_brings_the_index_in_line() {
    let (app, config) = project().await;
    std::fs::remove_dir_all(app.project.join("cache")).unwrap();
    let (code, out) = verify(&app, &config, &[], "verify-drift").await;
    assert_eq!(code, 1, "{out}");
    let drift = out.lines().filter(|l| l.starts_with("index-drift")).count();
    assert_eq!(drift, 3, "{out}");
    let (code, out) = verify(&app, &config, &["--fix"], "verify-drift-fix").await;
    assert_eq!(code, 1, "{out}");
    let (code, out) = verify(&app, &config, &[], "verify-drift-after").await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn index_rebuild_restores_search_after_the_cache_is_wiped() {
    let (app, config) = project().await;
    std::fs::remove_dir_all(app.project.join("cache")).unwrap();
    let (status, out, err) = run(
        app.dir.path(),
        &["--config", config.to_str().unwrap(), "index", "rebuild"],
        "rebuild",
    )
    .await;
    assert!(status.success(), "{out}\n{err}");
    assert!(out.contains("index rebuilt: 3 of 3 files indexed"), "{out}");
    assert!(
        err.contains("indexing"),
        "plain progress lines off a terminal: {err}"
    );
    // The server finds the index complete and re-reads nothing.
    let app = app.restart(|_| {}).await;
    let health = app.health().await;
    assert_eq!(health["reconcile"]["reindexed"], 0, "{health}");
    assert_eq!(health["files_indexed"], 3);
    let res = app.get_api("/api/files/search", &[("q", "sunset")]).await;
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["total"], 1);
}
