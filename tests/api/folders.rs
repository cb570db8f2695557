//! `/api/folders`: fetch, create, move, copy and delete, with the `.meta` twin.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn create_then_fetch_a_folder() {
    let app = spawn_app().await;
    let res = app
        .call(Method::POST, "/api/folders", json!({"path": "movies/sg-1"}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["path"], "movies/sg-1");
    assert_eq!(d["name"], "sg-1");
    assert_eq!(d["url"], "project/uploads/movies/sg-1");
    assert_eq!(d["full_url"], app.url("/project/uploads/movies/sg-1"));
    assert!(app.file_path("movies/sg-1").is_dir());
    let res = app
        .call(Method::POST, "/api/folders", json!({"path": "movies/sg-1"}))
        .await;
    assert_error(res, StatusCode::CONFLICT, "folder-exists").await;
    app.uploaded("movies/sg-1", "a.txt", b"a").await;
    std::fs::create_dir(app.file_path("movies/sg-1/season-5")).unwrap();
    let res = app
        .get_api("/api/folders", &[("path", "movies/sg-1")])
        .await;
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["files"], json!(["a.txt"]));
    assert_eq!(d["folders"], json!(["season-5"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn collection_lists_sub_folders_and_recursive_goes_deep() {
    let app = spawn_app().await;
    for p in ["r/a", "r/b/c", "r/.hidden"] {
        std::fs::create_dir_all(app.file_path(p)).unwrap();
    }
    let res = app
        .get_api("/api/folders", &[("path", "r"), ("collection", "true")])
        .await;
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(
        d.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b"]
    );
    let res = app
        .get_api(
            "/api/folders",
            &[("path", "r"), ("collection", "true"), ("recursive", "true")],
        )
        .await;
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(
        d.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["a", "b", "b/c"]
    );
    let root = app.get_api("/api/folders", &[("path", "")]).await;
    assert_eq!(
        root.json::<Value>().await.unwrap()["data"]["folders"],
        json!(["r"])
    );
    let res = app.get_api("/api/folders", &[("path", "nope")]).await;
    assert_error(res, StatusCode::NOT_FOUND, "folder-not-found").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn move_folder_takes_its_meta_along() {
    let app = spawn_app().await;
    let before = app.uploaded("old/sub", "a.txt", b"a").await;
    let res = app
        .call(
            Method::PUT,
            "/api/folders",
            json!({"path": "old", "new_path": "new/place"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(!app.file_path("old").exists());
    assert!(app.meta_path("new/place/sub/a.txt").exists());
    let d = app
        .fetch("new/place/sub/a.txt")
        .await
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone();
    assert_eq!(d["uuid"], before["uuid"]);
    let res = app
        .get_api("/api/files", &[("hash", before["hash"].as_str().unwrap())])
        .await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"][0]["path"],
        "new/place/sub/a.txt"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn move_folder_onto_existing_or_into_itself_is_refused() {
    let app = spawn_app().await;
    std::fs::create_dir_all(app.file_path("a/inner")).unwrap();
    std::fs::create_dir_all(app.file_path("b")).unwrap();
    let res = app
        .call(
            Method::PUT,
            "/api/folders",
            json!({"path": "a", "new_path": "b"}),
        )
        .await;
    assert_error(res, StatusCode::CONFLICT, "folder-exists").await;
    let res = app
        .call(
            Method::PUT,
            "/api/folders",
            json!({"path": "a", "new_path": "a/inner/x"}),
        )
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-target").await;
    let res = app
        .call(
            Method::PUT,
            "/api/folders",
            json!({"path": "zzz", "new_path": "y"}),
        )
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "folder-not-found").await;
    assert!(app.file_path("a/inner").is_dir());
}

#[tokio::test(flavor = "multi_thread")]
async fn copy_folder_copies_files_with_new_uuids() {
    let app = spawn_app().await;
    let src = app.uploaded("src/deep", "a.txt", b"a").await;
    app.call(
        Method::POST,
        "/api/files/meta",
        json!({"path": "src/deep/a.txt", "field": "alt", "value": "x"}),
    )
    .await;
    let res = app
        .call(
            Method::PUT,
            "/api/folders/copy",
            json!({"path": "src", "new_path": "dst"}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = app
        .fetch("dst/deep/a.txt")
        .await
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone();
    assert_eq!(d["alt"], "x");
    assert_ne!(d["uuid"], src["uuid"]);
    assert!(app.file_path("src/deep/a.txt").exists());
    let res = app
        .call(
            Method::PUT,
            "/api/folders/copy",
            json!({"path": "src", "new_path": "dst"}),
        )
        .await;
    assert_error(res, StatusCode::CONFLICT, "folder-exists").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn delete_folder_needs_recursive_when_not_empty() {
    let app = spawn_app().await;
    app.uploaded("full", "a.txt", b"a").await;
    let res = app
        .call(Method::DELETE, "/api/folders", json!({"path": "full"}))
        .await;
    assert_error(res, StatusCode::CONFLICT, "folder-not-empty").await;
    assert!(app.file_path("full/a.txt").exists());
    let res = app
        .call(
            Method::DELETE,
            "/api/folders",
            json!({"path": "full", "recursive": true}),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert!(!app.file_path("full").exists());
    assert!(!app.meta_path("full/a.txt").exists());
    let res = app
        .call(Method::DELETE, "/api/folders", json!({"path": "full"}))
        .await;
    assert_error(res, StatusCode::NOT_FOUND, "folder-not-found").await;
    let res = app
        .call(
            Method::DELETE,
            "/api/folders",
            json!({"path": "", "recursive": true}),
        )
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "root-folder").await;
}
