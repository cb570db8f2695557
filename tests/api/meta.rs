//! `/api/files/meta`: update, add and delete fields, dot notation, JSON values.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

async fn meta_call(app: &TestApp, method: Method, body: Value) -> reqwest::Response {
    app.call(method, "/api/files/meta", body).await
}

#[tokio::test(flavor = "multi_thread")]
async fn update_add_and_delete_a_field() {
    let app = spawn_app().await;
    app.uploaded("m", "cover.txt", b"c").await;
    let res = meta_call(
        &app,
        Method::PATCH,
        json!({"path": "m/cover.txt", "field": "title", "value": "Season 5"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["title"],
        "Season 5"
    );
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "m/cover.txt", "field": "tags", "value": "sg-1, season-5"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["tags"],
        "sg-1, season-5"
    );
    let res = meta_call(
        &app,
        Method::DELETE,
        json!({"path": "m/cover.txt", "field": "tags"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert!(d.get("tags").is_none());
    assert_eq!(d["title"], "Season 5");
    let on_disk = std::fs::read_to_string(app.meta_path("m/cover.txt")).unwrap();
    assert!(on_disk.contains("title: Season 5"));
    assert!(!on_disk.contains("tags"));
}

#[tokio::test(flavor = "multi_thread")]
async fn values_are_any_json_and_nested_fields_use_dots() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let values = [
        ("count", json!(3)),
        ("ratio", json!(1.5)),
        ("flag", json!(true)),
        ("tags", json!(["x", "y"])),
        ("credit", json!({"name": "N", "url": "u"})),
        ("nothing", json!(null)),
    ];
    for (field, value) in &values {
        let res = meta_call(
            &app,
            Method::POST,
            json!({"path": "a.txt", "field": field, "value": value}),
        )
        .await;
        assert_eq!(res.status(), StatusCode::OK, "{field}");
    }
    let res = meta_call(
        &app,
        Method::PATCH,
        json!({"path": "a.txt", "field": "credit.name", "value": "M"}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "a.txt", "field": "deep.er.field", "value": 1}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    for (field, value) in &values[..5] {
        if *field != "credit" {
            assert_eq!(&d[field], value, "{field}");
        }
    }
    assert_eq!(d["credit"], json!({"name": "M", "url": "u"}));
    assert_eq!(d["deep"], json!({"er": {"field": 1}}));
    assert_eq!(d["nothing"], Value::Null);
    let res = meta_call(
        &app,
        Method::DELETE,
        json!({"path": "a.txt", "field": "credit.url"}),
    )
    .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["credit"],
        json!({"name": "M"})
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_field_is_404_and_existing_field_409() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let res = meta_call(
        &app,
        Method::PATCH,
        json!({"path": "a.txt", "field": "nope", "value": 1}),
    )
    .await;
    assert_error(res, StatusCode::NOT_FOUND, "field-not-found").await;
    let res = meta_call(
        &app,
        Method::DELETE,
        json!({"path": "a.txt", "field": "nope.deeper"}),
    )
    .await;
    assert_error(res, StatusCode::NOT_FOUND, "field-not-found").await;
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "a.txt", "field": "title", "value": "x"}),
    )
    .await;
    assert_error(res, StatusCode::CONFLICT, "field-exists").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn system_fields_cannot_be_edited() {
    let app = spawn_app().await;
    let before = app.uploaded("", "a.txt", b"a").await;
    for field in [
        "hash",
        "filesize",
        "type",
        "uploaded_on",
        "modified_on",
        "uuid",
        "exif",
        "exif.Width",
    ] {
        for method in [Method::PATCH, Method::POST] {
            let res = meta_call(
                &app,
                method,
                json!({"path": "a.txt", "field": field, "value": 1}),
            )
            .await;
            assert_error(res, StatusCode::BAD_REQUEST, "system-field").await;
        }
        let res = meta_call(
            &app,
            Method::DELETE,
            json!({"path": "a.txt", "field": field}),
        )
        .await;
        assert_error(res, StatusCode::BAD_REQUEST, "system-field").await;
    }
    let after = app.fetch("a.txt").await.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(after["uuid"], before["uuid"]);
    assert_eq!(after["hash"], before["hash"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_meta_calls_are_400_or_404() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let res = meta_call(&app, Method::PATCH, json!({"path": "a.txt", "value": 1})).await;
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
    let res = meta_call(
        &app,
        Method::PATCH,
        json!({"path": "a.txt", "field": "title"}),
    )
    .await;
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "a.txt", "field": "a..b", "value": 1}),
    )
    .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-field").await;
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "gone.txt", "field": "x", "value": 1}),
    )
    .await;
    assert_error(res, StatusCode::NOT_FOUND, "file-not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn editor_fields_survive_move_copy_and_overwrite_verbatim() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let editor =
        json!({"list": [1, "two", {"three": 3}], "map": {"k": [true, null]}, "text": "Ünïcode ✓"});
    let res = meta_call(
        &app,
        Method::POST,
        json!({"path": "a.txt", "field": "editor", "value": editor}),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    app.call(
        Method::PUT,
        "/api/files",
        json!({"path": "a.txt", "new_path": "b/a.txt"}),
    )
    .await;
    app.call(
        Method::PUT,
        "/api/files/copy",
        json!({"path": "b/a.txt", "new_path": "c/a.txt"}),
    )
    .await;
    let res = app
        .upload_many("c", &[("a.txt", b"new content")], &[("overwrite", "true")])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    for p in ["b/a.txt", "c/a.txt"] {
        let d = app.fetch(p).await.json::<Value>().await.unwrap()["data"].clone();
        assert_eq!(d["editor"], editor, "{p}");
    }
}

/// Regression: an editor that truncates a meta file before writing it left a window in which
/// the server completed the empty file with fresh meta (atomically, so the editor's write then
/// went to the replaced file and was lost, and with it any `protected: true`).
#[tokio::test(flavor = "multi_thread")]
async fn an_empty_meta_file_just_written_by_hand_is_left_for_its_editor() {
    let app = spawn_app().await;
    app.uploaded("notes", "a.txt", b"hello\n").await;
    let meta_file = app.meta_path("notes/a.txt");
    let full = std::fs::read_to_string(&meta_file).unwrap();
    let started = std::time::Instant::now();
    std::fs::write(&meta_file, "").unwrap();
    let res = app.fetch("notes/a.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["data"]["hash"],
        blake3_hex(b"hello\n"),
        "facts are served"
    );
    // Within the grace the file is not touched (a busy machine may take longer to answer;
    // then the server may rightly complete it).
    if started.elapsed() < std::time::Duration::from_millis(1500) {
        assert_eq!(std::fs::read_to_string(&meta_file).unwrap(), "");
    }
    let edited = full.replace("title: A", "title: Mine");
    std::fs::write(&meta_file, &edited).unwrap();
    let body: Value = app.fetch("notes/a.txt").await.json().await.unwrap();
    assert_eq!(body["data"]["title"], "Mine");

    // An empty meta file nobody fills is completed once it is no longer young.
    std::fs::write(&meta_file, "").unwrap();
    until(
        "the abandoned empty meta to be completed",
        std::time::Duration::from_secs(15),
        || async {
            let _ = app.fetch("notes/a.txt").await;
            let text = std::fs::read_to_string(&meta_file).unwrap();
            text.contains("hash:").then_some(())
        },
    )
    .await;
}
