//! `/api/files`: fetch, move, copy, delete — Flextype's own cases and the deliberate
//! differences (409 on an existing target, relative `dirname`, split at the last dot).

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn fetch_single_file_returns_meta_and_computed_fields() {
    let app = spawn_app().await;
    let bytes = png(4, 3);
    app.uploaded("movies/sg-1", "new-cover.png", &bytes).await;
    let res = app.fetch("movies/sg-1/new-cover.png").await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["title"], "New Cover");
    assert_eq!(d["description"], "");
    assert_eq!(d["type"], "image/png");
    assert_eq!(d["filesize"], bytes.len());
    assert_eq!(d["hash"], blake3_hex(&bytes));
    assert_eq!(d["filename"], "new-cover.png");
    assert_eq!(d["basename"], "new-cover");
    assert_eq!(d["extension"], "png");
    assert_eq!(
        d["dirname"], "movies/sg-1",
        "dirname is relative, never a server path"
    );
    assert_eq!(d["path"], "movies/sg-1/new-cover.png");
    assert_eq!(d["url"], "project/uploads/movies/sg-1/new-cover.png");
    assert_eq!(
        d["full_url"],
        app.url("/project/uploads/movies/sg-1/new-cover.png")
    );
    assert_eq!(
        d["hash_url"],
        app.url(&format!("/media/{}.png", blake3_hex(&bytes)))
    );
    assert_eq!(d["exif"]["Width"], 4);
    assert_eq!(d["exif"]["Height"], 3);
    assert!(d["uuid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(d["uploaded_on"].as_i64().is_some_and(|t| t > 1_600_000_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_accepts_id_as_an_alias_of_path() {
    let app = spawn_app().await;
    app.uploaded("a", "x.txt", b"x").await;
    let res = app.get_api("/api/files", &[("id", "a/x.txt")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["filename"],
        "x.txt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn basename_and_extension_split_at_the_last_dot() {
    let app = spawn_app_with(|c| c.media.safe_names = false).await;
    let d = app.uploaded("", "archive.v2.final.txt", b"x").await;
    assert_eq!(d["basename"], "archive.v2.final");
    assert_eq!(d["extension"], "txt");
    assert_eq!(d["dirname"], "");
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_folder_returns_files_keyed_by_name() {
    let app = spawn_app().await;
    app.uploaded("f", "b.txt", b"b").await;
    app.uploaded("f", "a.txt", b"a").await;
    app.uploaded("f/sub", "c.txt", b"c").await;
    for query in [
        vec![("path", "f")],
        vec![("path", "f"), ("collection", "true")],
    ] {
        let res = app.get_api("/api/files", &query).await;
        assert_eq!(res.status(), StatusCode::OK);
        let data = res.json::<Value>().await.unwrap()["data"].clone();
        let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["a.txt", "b.txt"], "only direct files, sorted");
        assert_eq!(data["a.txt"]["path"], "f/a.txt");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn recursive_fetch_keys_by_path_relative_to_the_folder() {
    let app = spawn_app().await;
    app.uploaded("f", "a.txt", b"a").await;
    app.uploaded("f/sub/deeper", "c.txt", b"c").await;
    let res = app
        .get_api(
            "/api/files",
            &[("path", "f"), ("collection", "true"), ("recursive", "true")],
        )
        .await;
    let data = res.json::<Value>().await.unwrap()["data"].clone();
    let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["a.txt", "sub/deeper/c.txt"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_pages_with_limit_and_offset() {
    let app = spawn_app().await;
    for n in 0..5 {
        app.uploaded("p", &format!("f{n}.txt"), b"x").await;
    }
    let res = app
        .get_api(
            "/api/files",
            &[("path", "p"), ("limit", "2"), ("offset", "1")],
        )
        .await;
    let data = res.json::<Value>().await.unwrap()["data"].clone();
    let keys: Vec<&String> = data.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["f1.txt", "f2.txt"]);
    let res = app
        .get_api("/api/files", &[("path", "p"), ("limit", "x")])
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-parameter").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_folder_gives_empty_data_and_unknown_path_404() {
    let app = spawn_app().await;
    std::fs::create_dir_all(app.file_path("empty")).unwrap();
    let res = app.fetch("empty").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"data": {}}));
    assert_error(
        app.fetch("nope/x.jpg").await,
        StatusCode::NOT_FOUND,
        "file-not-found",
    )
    .await;
    assert_error(
        app.fetch("nope").await,
        StatusCode::NOT_FOUND,
        "file-not-found",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_without_path_is_400() {
    let app = spawn_app().await;
    let res = app.get_api("/api/files", &[]).await;
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fetch_by_hash_lists_every_path_with_that_content() {
    let app = spawn_app().await;
    app.uploaded("a", "one.txt", b"same").await;
    app.uploaded("b", "two.txt", b"same").await;
    app.uploaded("c", "other.txt", b"other").await;
    let res = app
        .get_api("/api/files", &[("hash", &blake3_hex(b"same"))])
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let data = res.json::<Value>().await.unwrap()["data"].clone();
    let paths: Vec<&str> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    assert_eq!(paths, ["a/one.txt", "b/two.txt"]);
    let res = app
        .get_api("/api/files", &[("hash", &blake3_hex(b"nothing"))])
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "hash-not-found").await;
    let res = app.get_api("/api/files", &[("hash", "xyz")]).await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-hash").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn move_keeps_meta_and_uuid_and_creates_parents() {
    let app = spawn_app().await;
    let before = app.uploaded("a", "cover.txt", b"c").await;
    app.called(
        Method::POST,
        "/api/files/meta",
        json!({"path": "a/cover.txt", "field": "alt", "value": "Alt"}),
    )
    .await;
    let res = app
        .call(
            Method::PUT,
            "/api/files",
            json!({"path": "a/cover.txt", "new_path": "b/c/new-cover.txt"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["path"], "b/c/new-cover.txt");
    assert_eq!(d["uuid"], before["uuid"]);
    assert_eq!(d["alt"], "Alt");
    assert_eq!(d["title"], "Cover", "the title travels with the meta");
    assert!(!app.file_path("a/cover.txt").exists());
    assert!(!app.meta_path("a/cover.txt").exists());
    assert!(app.meta_path("b/c/new-cover.txt").exists());
    let again = app
        .fetch("b/c/new-cover.txt")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(again["data"]["uuid"], before["uuid"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn move_returns_409_when_target_exists() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    app.uploaded("", "b.txt", b"b").await;
    let res = app
        .call(
            Method::PUT,
            "/api/files",
            json!({"path": "a.txt", "new_path": "b.txt"}),
        )
        .await;
    assert_error(res, StatusCode::CONFLICT, "file-exists").await;
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"a");
    assert_eq!(std::fs::read(app.file_path("b.txt")).unwrap(), b"b");
}

#[tokio::test(flavor = "multi_thread")]
async fn move_of_a_missing_file_is_404_and_missing_new_path_400() {
    let app = spawn_app().await;
    let res = app
        .call(
            Method::PUT,
            "/api/files",
            json!({"path": "no.txt", "new_path": "b.txt"}),
        )
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "file-not-found").await;
    let res = app
        .call(Method::PUT, "/api/files", json!({"path": "no.txt"}))
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "missing-parameter").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_gives_the_copy_a_new_uuid_and_keeps_editor_fields() {
    let app = spawn_app().await;
    let src = app.uploaded("s", "cover.txt", b"cc").await;
    app.call(
        Method::POST,
        "/api/files/meta",
        json!({"path": "s/cover.txt", "field": "tags", "value": ["a", "b"]}),
    )
    .await;
    let res = app
        .call(
            Method::PUT,
            "/api/files/copy",
            json!({"path": "s/cover.txt", "new_path": "t/cover.txt"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_ne!(d["uuid"], src["uuid"]);
    assert_eq!(d["tags"], json!(["a", "b"]));
    assert_eq!(d["hash"], src["hash"]);
    assert_eq!(std::fs::read(app.file_path("t/cover.txt")).unwrap(), b"cc");
    assert!(app.file_path("s/cover.txt").exists());
    // The copy's meta is current: fetching it does not re-hash into something else.
    let again = app
        .fetch("t/cover.txt")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(again["data"]["uuid"], d["uuid"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_returns_409_when_target_exists() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    app.uploaded("", "b.txt", b"b").await;
    let res = app
        .call(
            Method::PUT,
            "/api/files/copy",
            json!({"path": "a.txt", "new_path": "b.txt"}),
        )
        .await;
    assert_error(res, StatusCode::CONFLICT, "file-exists").await;
    assert_eq!(std::fs::read(app.file_path("b.txt")).unwrap(), b"b");
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_removes_file_and_meta_and_twice_is_404() {
    let app = spawn_app().await;
    app.uploaded("d", "x.txt", b"x").await;
    let res = app
        .call(Method::DELETE, "/api/files", json!({"id": "d/x.txt"}))
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!app.file_path("d/x.txt").exists());
    assert!(!app.meta_path("d/x.txt").exists());
    let res = app
        .call(Method::DELETE, "/api/files", json!({"path": "d/x.txt"}))
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "file-not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn form_encoded_bodies_work_like_json() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let res = app
        .client
        .put(app.url("/api/files"))
        .form(&[
            ("path", "a.txt"),
            ("new_path", "b.txt"),
            ("token", app.files_token.as_str()),
            ("access_token", app.access_token.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app.file_path("b.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_json_body_is_a_400_with_json_error() {
    let app = spawn_app().await;
    let res = app
        .client
        .put(app.url("/api/files"))
        .header("content-type", "application/json")
        .body("{\"path\": ")
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::BAD_REQUEST, "bad-body").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_route_and_wrong_method_answer_json() {
    let app = spawn_app().await;
    let res = app.client.get(app.url("/api/nope")).send().await.unwrap();
    assert_error(res, StatusCode::NOT_FOUND, "route-not-found").await;
    let res = app
        .client
        .patch(app.url("/api/files"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn file_dropped_by_hand_gets_meta_on_first_fetch() {
    let app = spawn_app().await;
    app.put_file("hand/my_summer-photo.txt", b"dropped");
    let d = app
        .fetch("hand/my_summer-photo.txt")
        .await
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone();
    assert_eq!(d["title"], "My Summer Photo");
    assert_eq!(d["hash"], blake3_hex(b"dropped"));
    assert!(app.meta_path("hand/my_summer-photo.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn file_changed_in_place_gets_new_facts_and_keeps_editor_fields() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"one").await;
    app.call(
        Method::POST,
        "/api/files/meta",
        json!({"path": "a.txt", "field": "credit", "value": "Me"}),
    )
    .await;
    app.put_file("a.txt", b"two, longer");
    let d = app.fetch("a.txt").await.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["hash"], blake3_hex(b"two, longer"));
    assert_eq!(d["filesize"], 11);
    assert_eq!(d["credit"], "Me");
}

#[tokio::test(flavor = "multi_thread")]
async fn flextype_meta_without_hash_or_uuid_is_completed_and_kept() {
    let app = spawn_app().await;
    app.put_file("old/cover.txt", b"legacy");
    let meta = app.meta_path("old/cover.txt");
    std::fs::create_dir_all(meta.parent().unwrap()).unwrap();
    std::fs::write(
        &meta,
        "title: Episode 21\ndescription: Old one\ntype: text/plain\nfilesize: 6\nuploaded_on: 1596107422\nexif: {}\ncustom:\n  nested: [1, 2]\n",
    )
    .unwrap();
    let d = app
        .fetch("old/cover.txt")
        .await
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone();
    assert_eq!(d["title"], "Episode 21");
    assert_eq!(d["description"], "Old one");
    assert_eq!(d["uploaded_on"], 1596107422);
    assert_eq!(d["custom"], json!({"nested": [1, 2]}));
    assert_eq!(d["hash"], blake3_hex(b"legacy"));
    assert!(d["uuid"].is_string());
    let text = std::fs::read_to_string(&meta).unwrap();
    assert!(
        text.starts_with("title: Episode 21\n"),
        "field order kept: {text}"
    );
    assert!(text.contains("hash: "));
}

#[tokio::test(flavor = "multi_thread")]
async fn broken_meta_yaml_is_never_overwritten() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"a").await;
    let broken = "title: [unclosed\n";
    std::fs::write(app.meta_path("a.txt"), broken).unwrap();
    let res = app.fetch("a.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["hash"], blake3_hex(b"a"));
    let res = app
        .call(
            Method::PATCH,
            "/api/files/meta",
            json!({"path": "a.txt", "field": "title", "value": "x"}),
        )
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-meta").await;
    assert_eq!(
        std::fs::read_to_string(app.meta_path("a.txt")).unwrap(),
        broken
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn full_url_uses_the_configured_url() {
    let app = spawn_app_with(|c| c.url = "https://media.example.org/".into()).await;
    let d = app.uploaded("", "a.txt", b"a").await;
    assert_eq!(
        d["full_url"],
        "https://media.example.org/project/uploads/a.txt"
    );
    assert_eq!(
        d["hash_url"],
        format!("https://media.example.org/media/{}.txt", blake3_hex(b"a"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_answers_preflight_and_marks_responses() {
    let app = spawn_app().await;
    let res = app
        .client
        .request(Method::OPTIONS, app.url("/api/files"))
        .header("Origin", "https://site.example")
        .header("Access-Control-Request-Method", "PUT")
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
    let res = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "https://site.example")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["access-control-allow-origin"], "*");
}

#[tokio::test(flavor = "multi_thread")]
async fn cors_can_be_limited_to_one_origin_or_disabled() {
    let app = spawn_app_with(|c| c.cors.origin = "https://mine.example".into()).await;
    let res = app
        .client
        .get(app.url("/api/health"))
        .header("Origin", "https://mine.example")
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://mine.example"
    );
    let off = spawn_app_with(|c| c.cors.enabled = false).await;
    let res = off
        .client
        .get(off.url("/api/health"))
        .header("Origin", "https://site.example")
        .send()
        .await
        .unwrap();
    assert!(res.headers().get("access-control-allow-origin").is_none());
}
