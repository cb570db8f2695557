//! The watcher: files dropped, written slowly, changed, renamed and moved by hand, folders
//! renamed, meta edited and broken by hand — through real filesystem events.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

const DEADLINE: Duration = Duration::from_secs(15);

async fn watched() -> TestApp {
    spawn_app_with(|c| {
        c.watch.enabled = true;
        c.watch.quiet_ms = 200;
        c.watch.orphan_grace_s = 2;
    })
    .await
}

fn read_meta(path: &Path) -> Option<serde_yaml::Mapping> {
    serde_yaml::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

fn field<'a>(m: &'a serde_yaml::Mapping, key: &str) -> &'a serde_yaml::Value {
    m.get(key).unwrap_or(&serde_yaml::Value::Null)
}

async fn wait_meta(app: &TestApp, rel: &str, what: &str) -> serde_yaml::Mapping {
    let path = app.meta_path(rel);
    until(what, DEADLINE, || async { read_meta(&path) }).await
}

async fn add_field(app: &TestApp, path: &str, field: &str, value: Value) {
    app.called(
        Method::POST,
        "/api/files/meta",
        json!({ "path": path, "field": field, "value": value }),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_file_gets_meta_and_becomes_searchable() {
    let app = watched().await;
    let bytes = png(6, 5);
    app.put_file("inbox/holiday-photo.png", &bytes);
    let m = wait_meta(&app, "inbox/holiday-photo.png", "meta of a dropped file").await;
    assert_eq!(field(&m, "title").as_str(), Some("Holiday Photo"));
    assert_eq!(
        field(&m, "hash").as_str(),
        Some(blake3_hex(&bytes).as_str())
    );
    assert_eq!(field(&m, "type").as_str(), Some("image/png"));
    assert!(field(&m, "uuid").as_str().is_some());
    app.wait_search(&[("q", "holiday")], &["inbox/holiday-photo.png"], DEADLINE)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_being_written_slowly_is_hashed_only_once_finished() {
    let app = watched().await;
    let path = app.file_path("slow/video.mp4");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&path).unwrap();
    let mut all = Vec::new();
    for i in 0..12u8 {
        let chunk = vec![i; 10_000];
        f.write_all(&chunk).unwrap();
        f.flush().unwrap();
        all.extend_from_slice(&chunk);
        tokio::time::sleep(Duration::from_millis(80)).await;
        assert!(
            !app.meta_path("slow/video.mp4").exists(),
            "meta written while the file was still being written (chunk {i})"
        );
    }
    drop(f);
    let m = wait_meta(&app, "slow/video.mp4", "meta once writing stopped").await;
    assert_eq!(field(&m, "filesize").as_u64(), Some(all.len() as u64));
    assert_eq!(field(&m, "hash").as_str(), Some(blake3_hex(&all).as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_changed_in_place_gets_new_facts_and_keeps_editor_fields() {
    let app = watched().await;
    app.uploaded("docs", "notes.txt", b"first version").await;
    add_field(&app, "docs/notes.txt", "credit", json!("Jane")).await;
    std::fs::write(app.file_path("docs/notes.txt"), b"second, longer version").unwrap();
    let want = blake3_hex(b"second, longer version");
    let m = until("refreshed meta", DEADLINE, || async {
        read_meta(&app.meta_path("docs/notes.txt"))
            .filter(|m| field(m, "hash").as_str() == Some(want.as_str()))
    })
    .await;
    assert_eq!(field(&m, "filesize").as_u64(), Some(22));
    assert_eq!(field(&m, "credit").as_str(), Some("Jane"));
    app.wait_search(
        &[("q", "*"), ("min_size", "22")],
        &["docs/notes.txt"],
        DEADLINE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_renamed_by_hand_keeps_its_meta_and_uuid() {
    let app = watched().await;
    let d = app.uploaded("a", "cover.png", &png(3, 3)).await;
    add_field(&app, "a/cover.png", "credit", json!("Jane")).await;
    std::fs::create_dir_all(app.file_path("b")).unwrap();
    std::fs::rename(app.file_path("a/cover.png"), app.file_path("b/front.png")).unwrap();
    // Under load the rename may arrive as a removal and a creation: the new name then gets
    // fresh meta first and takes the old meta over by its hash a moment later. What counts
    // is where it ends.
    let m = until("the meta at the new name", DEADLINE, || async {
        read_meta(&app.meta_path("b/front.png"))
            .filter(|m| field(m, "uuid").as_str() == d["uuid"].as_str())
    })
    .await;
    assert_eq!(field(&m, "credit").as_str(), Some("Jane"));
    until("the old meta gone", DEADLINE, || async {
        (!app.meta_path("a/cover.png").exists()).then_some(())
    })
    .await;
    app.wait_search(&[("q", "*")], &["b/front.png"], DEADLINE)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_moved_out_and_back_in_takes_its_meta_back() {
    let app = watched().await;
    let d = app
        .uploaded("a", "song.mp3", b"ID3 not really a song")
        .await;
    add_field(&app, "a/song.mp3", "artist", json!("Someone")).await;
    let outside = app.dir.path().join("outside.mp3");
    std::fs::rename(app.file_path("a/song.mp3"), &outside).unwrap();
    app.wait_search(&[("q", "*")], &[], DEADLINE).await;
    std::fs::create_dir_all(app.file_path("music")).unwrap();
    std::fs::rename(&outside, app.file_path("music/song.mp3")).unwrap();
    let m = wait_meta(&app, "music/song.mp3", "meta taken back").await;
    assert_eq!(field(&m, "uuid").as_str(), d["uuid"].as_str());
    assert_eq!(field(&m, "artist").as_str(), Some("Someone"));
    assert!(!app.meta_path("a/song.mp3").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copy_then_delete_move_keeps_the_meta() {
    let app = watched().await;
    let d = app.uploaded("a", "doc.txt", b"copied then deleted").await;
    add_field(&app, "a/doc.txt", "owner", json!("Sam")).await;
    std::fs::create_dir_all(app.file_path("b")).unwrap();
    std::fs::copy(app.file_path("a/doc.txt"), app.file_path("b/doc.txt")).unwrap();
    wait_meta(&app, "b/doc.txt", "fresh meta of the copy").await;
    std::fs::remove_file(app.file_path("a/doc.txt")).unwrap();
    let m = until("the copy took the meta over", DEADLINE, || async {
        read_meta(&app.meta_path("b/doc.txt")).filter(|m| field(m, "owner").as_str() == Some("Sam"))
    })
    .await;
    assert_eq!(field(&m, "uuid").as_str(), d["uuid"].as_str());
    assert!(!app.meta_path("a/doc.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn orphaned_meta_is_removed_after_the_grace_period_and_reported() {
    let app = watched().await;
    app.uploaded("a", "gone.txt", b"soon gone").await;
    std::fs::remove_file(app.file_path("a/gone.txt")).unwrap();
    app.wait_search(&[("q", "*")], &[], DEADLINE).await;
    until("orphaned meta removed", DEADLINE, || async {
        (!app.meta_path("a/gone.txt").exists()).then_some(())
    })
    .await;
    let h = app.health().await;
    let problems = h["problems"].as_array().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p["code"] == "orphaned-meta-removed" && p["path"] == "a/gone.txt"),
        "{h}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_renamed_by_hand_keeps_every_files_meta() {
    let app = watched().await;
    let one = app.uploaded("a/b", "one.txt", b"one").await;
    let two = app.uploaded("a", "two.txt", b"two").await;
    std::fs::rename(app.file_path("a"), app.file_path("z")).unwrap();
    app.wait_search(
        &[("q", "*"), ("folder", "z"), ("sort", "filename")],
        &["z/b/one.txt", "z/two.txt"],
        DEADLINE,
    )
    .await;
    let m = read_meta(&app.meta_path("z/b/one.txt")).unwrap();
    assert_eq!(field(&m, "uuid").as_str(), one["uuid"].as_str());
    let m = read_meta(&app.meta_path("z/two.txt")).unwrap();
    assert_eq!(field(&m, "uuid").as_str(), two["uuid"].as_str());
    assert!(!app.meta_path("a/two.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_folder_moved_in_is_scanned_and_a_deleted_one_is_forgotten() {
    let app = watched().await;
    let outside = app.dir.path().join("incoming");
    std::fs::create_dir_all(outside.join("deep")).unwrap();
    std::fs::write(outside.join("x.txt"), b"x").unwrap();
    std::fs::write(outside.join("deep/y.txt"), b"y").unwrap();
    std::fs::rename(&outside, app.file_path("incoming")).unwrap();
    app.wait_search(
        &[("q", "*"), ("sort", "filename")],
        &["incoming/x.txt", "incoming/deep/y.txt"],
        DEADLINE,
    )
    .await;
    assert!(app.meta_path("incoming/deep/y.txt").exists());
    std::fs::remove_dir_all(app.file_path("incoming")).unwrap();
    app.wait_search(&[("q", "*")], &[], DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_edited_by_hand_is_reindexed_and_broken_yaml_is_reported() {
    let app = watched().await;
    app.uploaded("", "report.pdf", b"%PDF-1.4\n").await;
    let meta = app.meta_path("report.pdf");
    let good = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(
        &meta,
        good.replace("title: Report", "title: Annual accounts"),
    )
    .unwrap();
    app.wait_search(&[("q", "annual")], &["report.pdf"], DEADLINE)
        .await;

    std::fs::write(&meta, "title: [unclosed\n").unwrap();
    let h = until("invalid meta reported", DEADLINE, || async {
        let h = app.health().await;
        let found = h["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["code"] == "invalid-meta" && p["path"] == "report.pdf");
        found.then_some(h)
    })
    .await;
    let text = h.to_string();
    assert!(text.contains("line"), "the message names the line: {text}");
    assert!(
        !text.contains(app.project.to_str().unwrap()),
        "no server paths: {text}"
    );
    assert_eq!(
        std::fs::read_to_string(&meta).unwrap(),
        "title: [unclosed\n",
        "broken meta is never overwritten"
    );
    // The last good meta stays searchable.
    assert_eq!(
        hit_paths(&app.search(&[("q", "annual")]).await),
        ["report.pdf"]
    );

    std::fs::write(&meta, good.replace("title: Report", "title: Fixed")).unwrap();
    app.wait_search(&[("q", "fixed")], &["report.pdf"], DEADLINE)
        .await;
    until("problem cleared", DEADLINE, || async {
        let h = app.health().await;
        h["problems"].as_array().unwrap().is_empty().then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hidden_partial_and_temp_names_are_ignored_and_own_writes_do_not_loop() {
    let app = watched().await;
    app.put_file("in/.hidden.png", b"hidden");
    app.put_file("in/movie.mp4.part", b"partial");
    app.put_file("in/.flextype-tmp-123", b"temp");
    app.put_file("in/seen.txt", b"seen");
    wait_meta(&app, "in/seen.txt", "meta of the visible file").await;
    let meta_mtime = || {
        std::fs::metadata(app.meta_path("in/seen.txt"))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before = meta_mtime();
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(
        meta_mtime(),
        before,
        "the server's own meta write came back as work"
    );
    for ignored in [
        "in/.hidden.png",
        "in/movie.mp4.part",
        "in/.flextype-tmp-123",
    ] {
        assert!(!app.meta_path(ignored).exists(), "{ignored} got meta");
    }
    assert_eq!(hit_paths(&app.search(&[("q", "*")]).await), ["in/seen.txt"]);
}
