//! `POST /api/files`: multipart upload with names, types, sizes and conflicts.

use reqwest::multipart::{Form, Part};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn upload_stores_the_original_bytes_and_a_meta_file() {
    let app = spawn_app().await;
    let bytes = jpeg(16, 9);
    let d = app.uploaded("entries/sg-1", "new-cover.jpg", &bytes).await;
    assert_eq!(
        std::fs::read(app.file_path("entries/sg-1/new-cover.jpg")).unwrap(),
        bytes,
        "never re-encoded"
    );
    assert_eq!(d["type"], "image/jpeg");
    assert_eq!(d["hash"], blake3_hex(&bytes));
    assert_eq!(d["exif"]["Width"], 16);
    assert_eq!(d["exif"]["html"], "width=\"16\" height=\"9\"");
    let meta: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(app.meta_path("entries/sg-1/new-cover.jpg")).unwrap(),
    )
    .unwrap();
    assert_eq!(meta["hash"].as_str().unwrap(), blake3_hex(&bytes));
    assert_eq!(meta["title"].as_str().unwrap(), "New Cover");
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_reads_camera_date_and_position_from_exif() {
    let app = spawn_app().await;
    let d = app
        .uploaded("photos", "beach.jpg", &jpeg_with_camera_exif(false))
        .await;
    let exif = &d["exif"];
    assert_eq!(exif["Width"], 16);
    assert_eq!(exif["IsColor"], 1);
    assert_eq!(exif["Make"], "NIKON CORPORATION");
    assert_eq!(exif["Model"], "NIKON D750");
    assert_eq!(exif["DateTimeOriginal"], "2021:05:01 09:30:00");
    assert_eq!(exif["GPSLatitude"], -33.85, "south is negative");
    assert_eq!(exif["GPSLongitude"], 151.2);
    let meta = std::fs::read_to_string(app.meta_path("photos/beach.jpg")).unwrap();
    assert!(meta.contains("Model: NIKON D750"), "{meta}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_broken_exif_block_never_fails_an_upload() {
    let app = spawn_app().await;
    let d = app
        .uploaded("photos", "damaged.jpg", &jpeg_with_camera_exif(true))
        .await;
    assert_eq!(d["exif"]["Width"], 16, "the header still gives the size");
    assert_eq!(d["exif"]["Make"], Value::Null);
}

#[tokio::test(flavor = "multi_thread")]
async fn safe_names_slugify_the_stem() {
    let app = spawn_app().await;
    let d = app.uploaded("", "My Photo.PNG", &png(2, 2)).await;
    assert_eq!(d["filename"], "my-photo.png");
    assert!(app.file_path("my-photo.png").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn name_clash_is_409_and_nothing_changes() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"first").await;
    let res = app.upload("", "a.txt", b"second").await;
    assert_error(res, StatusCode::CONFLICT, "file-exists").await;
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"first");
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn overwrite_replaces_content_and_keeps_editor_fields() {
    let app = spawn_app().await;
    let first = app.uploaded("", "a.txt", b"first").await;
    app.call(
        reqwest::Method::POST,
        "/api/files/meta",
        json!({"path": "a.txt", "field": "alt", "value": "kept"}),
    )
    .await;
    let res = app
        .upload_many("", &[("a.txt", b"second!")], &[("overwrite", "true")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["alt"], "kept");
    assert_eq!(d["uuid"], first["uuid"]);
    assert_eq!(d["hash"], blake3_hex(b"second!"));
    assert_eq!(d["filesize"], 7);
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"second!");
}

#[tokio::test(flavor = "multi_thread")]
async fn rename_picks_the_next_free_numbered_name() {
    let app = spawn_app().await;
    app.uploaded("", "cover.txt", b"0").await;
    for n in 1..=2 {
        let res = app
            .upload_many("", &[("cover.txt", b"n")], &[("rename", "true")])
            .await;
        assert_eq!(res.status(), StatusCode::OK);
        let d = res.json::<Value>().await.unwrap()["data"].clone();
        assert_eq!(d["filename"], format!("cover-{n}.txt"));
    }
    assert_eq!(std::fs::read(app.file_path("cover.txt")).unwrap(), b"0");
}

#[tokio::test(flavor = "multi_thread")]
async fn several_files_in_one_request_return_an_array() {
    let app = spawn_app().await;
    let res = app
        .upload_many("multi", &[("a.txt", b"a"), ("b.md", b"# b")], &[])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    let names: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["filename"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a.txt", "b.md"]);
    assert_eq!(d[1]["type"], "text/markdown");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_file_in_a_batch_stores_none_of_them() {
    let app = spawn_app().await;
    let res = app
        .upload_many("batch", &[("ok.txt", b"ok"), ("bad.exe", b"MZ")], &[])
        .await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "type-not-accepted").await;
    assert!(!app.file_path("batch/ok.txt").exists());
    assert!(temp_files(&app.project).is_empty());
    app.uploaded("batch", "taken.txt", b"t").await;
    let res = app
        .upload_many("batch", &[("new.txt", b"n"), ("taken.txt", b"x")], &[])
        .await;
    assert_error(res, StatusCode::CONFLICT, "file-exists").await;
    assert!(
        !app.file_path("batch/new.txt").exists(),
        "the first file of a failed batch is removed"
    );
    assert!(!app.meta_path("batch/new.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn html_named_jpg_is_refused_with_415() {
    let app = spawn_app().await;
    let res = app
        .upload(
            "",
            "evil.jpg",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        )
        .await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-mismatch").await;
    assert!(!app.file_path("evil.jpg").exists());
    let res = app.upload("", "fake.png", &jpeg(2, 2)).await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-mismatch").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn extension_allow_list_is_an_exact_match() {
    let app = spawn_app().await;
    for name in ["x.php", "x.jpgx", "x.pjpg", "noext", "x.html"] {
        let res = app.upload("", name, b"data").await;
        assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "type-not-accepted").await;
    }
    assert_eq!(
        std::fs::read_dir(app.uploads())
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .count(),
        0
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_over_max_size_is_413_and_leaves_nothing() {
    let app = spawn_app_with(|c| c.media.max_file_size = 1000).await;
    let res = app.upload("", "big.txt", &vec![b'a'; 5000]).await;
    assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
    assert!(!app.file_path("big.txt").exists());
    assert!(temp_files(&app.project).is_empty());
    app.uploaded("", "small.txt", &[b'a'; 1000]).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_needs_both_tokens_and_stores_nothing_without_them() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("token", app.files_token.clone())
        .text("folder", "")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
    let form = Form::new()
        .text("token", app.files_token.clone())
        .text("access_token", "")
        .text("folder", "")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
    assert!(!app.file_path("a.txt").exists());
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_may_come_in_headers() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("folder", "h")
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let res = app
        .client
        .post(app.url("/api/files"))
        .bearer_auth(&app.files_token)
        .header("X-Access-Token", &app.access_token)
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app.file_path("h/a.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_file_or_folder_is_400() {
    let app = spawn_app().await;
    let form = Form::new()
        .text("token", app.files_token.clone())
        .text("access_token", app.access_token.clone())
        .text("folder", "");
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
    let form = Form::new()
        .text("token", app.files_token.clone())
        .text("access_token", app.access_token.clone())
        .part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_into_a_path_that_is_a_file_is_400() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let res = app.upload("a.txt", "b.txt", b"b").await;
    assert_error(res, StatusCode::BAD_REQUEST, "not-a-folder").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_upload_streams_and_hashes_correctly() {
    let app = spawn_app().await;
    let bytes: Vec<u8> = (0..6 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let d = app.uploaded("big", "data.txt", &bytes).await;
    assert_eq!(d["filesize"], bytes.len());
    assert_eq!(d["hash"], blake3_hex(&bytes));
    assert_eq!(std::fs::read(app.file_path("big/data.txt")).unwrap(), bytes);
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_text_fields_are_refused_before_any_file_is_read() {
    let app = spawn_app().await;
    let mut form = Form::new();
    for n in 0..8 {
        form = form.text(format!("junk{n}"), "x".repeat(60 * 1024));
    }
    let form = form.part("file", Part::bytes(b"x".to_vec()).file_name("a.txt"));
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "field-too-large").await;
    assert!(temp_files(&app.project).is_empty());
}
