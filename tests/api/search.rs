//! `GET /api/files/search`: text, filters, sorting, paging and errors; changes made through the
//! API become searchable; the index is rebuilt when the cache is wiped or damaged.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// How long a change may take to show up before a test gives up (generous for a busy
/// machine; the server's own batching window is a fraction of a second).
const DEADLINE: Duration = Duration::from_secs(10);

/// A small library: (folder, name, bytes).
async fn library(app: &TestApp) {
    app.uploaded("movies/sg-1", "cover.png", &png(40, 30)).await;
    app.uploaded("movies/sg-1/season-5", "poster.jpg", &jpeg(20, 60))
        .await;
    app.uploaded("movies", "notes.txt", b"plain text notes")
        .await;
    app.uploaded("docs", "manual.pdf", b"%PDF-1.4\n% tiny\n")
        .await;
    app.uploaded("", "readme.md", b"# Read me, please").await;
    app.wait_search(
        &[("q", "*"), ("sort", "filename:asc")],
        &[
            "movies/sg-1/cover.png",
            "docs/manual.pdf",
            "movies/notes.txt",
            "movies/sg-1/season-5/poster.jpg",
            "readme.md",
        ],
        DEADLINE,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_is_found_by_title_and_returned_as_a_file_object() {
    let app = spawn_app().await;
    app.uploaded("movies/sg-1", "new-cover.png", &png(4, 3))
        .await;
    let body = app
        .wait_search(
            &[("q", "new cover")],
            &["movies/sg-1/new-cover.png"],
            DEADLINE,
        )
        .await;
    assert_eq!(body["total"], 1);
    let f = &body["data"][0];
    assert_eq!(f["title"], "New Cover");
    assert_eq!(f["type"], "image/png");
    assert_eq!(f["exif"]["Width"], 4);
    assert_eq!(
        f["full_url"],
        app.url("/project/uploads/movies/sg-1/new-cover.png")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn filters_narrow_by_folder_type_extension_and_size() {
    let app = spawn_app().await;
    library(&app).await;
    type Query = Vec<(&'static str, &'static str)>;
    let by = |q: Query| q;
    let cases: Vec<(Query, Vec<&str>)> = vec![
        (
            by(vec![("folder", "movies/sg-1")]),
            vec!["movies/sg-1/cover.png", "movies/sg-1/season-5/poster.jpg"],
        ),
        (
            by(vec![("folder", "movies")]),
            vec![
                "movies/sg-1/cover.png",
                "movies/notes.txt",
                "movies/sg-1/season-5/poster.jpg",
            ],
        ),
        (
            by(vec![("type", "image/png")]),
            vec!["movies/sg-1/cover.png"],
        ),
        (
            by(vec![("type", "image/*")]),
            vec!["movies/sg-1/cover.png", "movies/sg-1/season-5/poster.jpg"],
        ),
        (by(vec![("ext", "PDF")]), vec!["docs/manual.pdf"]),
        (
            by(vec![("max_size", "17")]),
            vec!["docs/manual.pdf", "movies/notes.txt", "readme.md"],
        ),
        (
            by(vec![("min_size", "16"), ("max_size", "16")]),
            vec!["docs/manual.pdf", "movies/notes.txt"],
        ),
        (by(vec![("folder", "nowhere")]), vec![]),
    ];
    for (mut query, want) in cases {
        query.push(("sort", "filename:asc"));
        query.push(("q", "*"));
        let body = app.search(&query).await;
        assert_eq!(hit_paths(&body), want, "{query:?}");
        assert_eq!(body["total"], want.len(), "{query:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn tags_editor_fields_and_query_syntax_are_searchable() {
    let app = spawn_app().await;
    library(&app).await;
    let set = |path: &str, field: &str, value: Value| json!({ "path": path, "field": field, "value": value });
    for body in [
        set("movies/sg-1/cover.png", "tags", json!(["Sci-Fi", "cover"])),
        set(
            "movies/notes.txt",
            "credits",
            json!({ "writer": "Jane Doe" }),
        ),
    ] {
        app.called(Method::POST, "/api/files/meta", body).await;
    }
    app.wait_search(&[("tag", "sci-fi")], &["movies/sg-1/cover.png"], DEADLINE)
        .await;
    app.wait_search(&[("q", "jane")], &["movies/notes.txt"], DEADLINE)
        .await;
    let body = app
        .search(&[
            ("q", "title:poster OR filename:readme"),
            ("sort", "filename"),
        ])
        .await;
    assert_eq!(
        hit_paths(&body),
        ["movies/sg-1/season-5/poster.jpg", "readme.md"]
    );
    let body = app.search(&[("q", "cover -notes")]).await;
    assert_eq!(hit_paths(&body), ["movies/sg-1/cover.png"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sort_and_paging_with_a_total_of_all_matches() {
    let app = spawn_app().await;
    library(&app).await;
    let body = app
        .search(&[("sort", "filesize:desc"), ("type", "image/*")])
        .await;
    let sizes: Vec<u64> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["filesize"].as_u64().unwrap())
        .collect();
    assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
    let page = |offset: &'static str| {
        vec![
            ("q", "*"),
            ("sort", "filename:asc"),
            ("limit", "2"),
            ("offset", offset),
        ]
    };
    let first = app.search(&page("0")).await;
    let second = app.search(&page("2")).await;
    let last = app.search(&page("4")).await;
    assert_eq!(first["total"], 5);
    assert_eq!(
        hit_paths(&first),
        ["movies/sg-1/cover.png", "docs/manual.pdf"]
    );
    assert_eq!(
        hit_paths(&second),
        ["movies/notes.txt", "movies/sg-1/season-5/poster.jpg"]
    );
    assert_eq!(hit_paths(&last), ["readme.md"]);
    assert_eq!(last["total"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn default_order_with_star_is_newest_first() {
    let app = spawn_app().await;
    app.uploaded("", "old.txt", b"old").await;
    // uploaded_on has one-second resolution.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    app.uploaded("", "new.txt", b"new").await;
    app.wait_search(&[("q", "*")], &["new.txt", "old.txt"], DEADLINE)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_queries_sorts_and_limits_are_400_and_search_needs_a_token() {
    let app = spawn_app().await;
    library(&app).await;
    for (query, code) in [
        (vec![("q", "title:(unclosed")], "invalid-query"),
        (vec![("q", "nosuchfield:x")], "invalid-query"),
        (vec![("q", "title:*")], "invalid-query"),
        (vec![("q", "*"), ("sort", "colour:asc")], "invalid-sort"),
        (
            vec![("q", "*"), ("sort", "filesize:sideways")],
            "invalid-sort",
        ),
        (vec![("q", "*"), ("limit", "100000")], "invalid-parameter"),
        (vec![("q", "*"), ("min_size", "-1")], "invalid-parameter"),
        (vec![("q", "*"), ("folder", "../etc")], "invalid-path"),
    ] {
        let res = app.get_api("/api/files/search", &query).await;
        assert_error(res, StatusCode::BAD_REQUEST, code).await;
    }
    let far = app
        .search(&[("q", "*"), ("offset", "18446744073709551615")])
        .await;
    assert_eq!(far["data"], json!([]), "a huge offset is an empty page");
    assert_eq!(far["total"], 5);
    let res = app
        .client
        .get(app.url("/api/files/search?q=*"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn edits_moves_and_deletes_through_the_api_are_followed() {
    let app = spawn_app().await;
    library(&app).await;
    app.called(
        Method::PATCH,
        "/api/files/meta",
        json!({ "path": "readme.md", "field": "title", "value": "Getting started" }),
    )
    .await;
    app.wait_search(&[("q", "started")], &["readme.md"], DEADLINE)
        .await;
    app.wait_search(&[("q", "title:readme")], &[], DEADLINE)
        .await;

    app.called(
        Method::PUT,
        "/api/files",
        json!({ "path": "docs/manual.pdf", "new_path": "guides/manual.pdf" }),
    )
    .await;
    app.wait_search(&[("q", "manual")], &["guides/manual.pdf"], DEADLINE)
        .await;

    app.called(
        Method::PUT,
        "/api/folders",
        json!({ "path": "movies/sg-1", "new_path": "films/stargate" }),
    )
    .await;
    app.wait_search(
        &[("folder", "films"), ("sort", "filename")],
        &[
            "films/stargate/cover.png",
            "films/stargate/season-5/poster.jpg",
        ],
        DEADLINE,
    )
    .await;
    app.wait_search(&[("folder", "movies/sg-1")], &[], DEADLINE)
        .await;

    let res = app
        .call(
            Method::DELETE,
            "/api/files",
            json!({ "path": "movies/notes.txt" }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.wait_search(&[("q", "notes")], &[], DEADLINE).await;

    let res = app
        .call(
            Method::DELETE,
            "/api/folders",
            json!({ "path": "films", "recursive": true }),
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.wait_search(&[("type", "image/*")], &[], DEADLINE).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wiped_cache_is_rebuilt_from_files_and_meta_on_restart() {
    let app = spawn_app().await;
    library(&app).await;
    let app = app
        .restart(|project| std::fs::remove_dir_all(project.join("cache")).unwrap())
        .await;
    app.wait_search(
        &[("q", "*"), ("sort", "filename")],
        &[
            "movies/sg-1/cover.png",
            "docs/manual.pdf",
            "movies/notes.txt",
            "movies/sg-1/season-5/poster.jpg",
            "readme.md",
        ],
        DEADLINE,
    )
    .await;
    let health = app.health().await;
    assert_eq!(health["reconcile"]["state"], "done");
    assert_eq!(health["reconcile"]["reindexed"], 5);
    assert_eq!(health["files_indexed"], 5);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_damaged_index_is_rebuilt_and_an_intact_one_is_not_reread() {
    let app = spawn_app().await;
    library(&app).await;
    // Unchanged files are taken from the index as they are.
    let app = app.restart(|_| {}).await;
    let health = app.health().await;
    assert_eq!(health["reconcile"]["reindexed"], 0, "{health}");
    // Every index file overwritten with garbage.
    let app = app
        .restart(|project| {
            for entry in std::fs::read_dir(project.join("cache/index")).unwrap() {
                let path = entry.unwrap().path();
                if path.is_file() {
                    std::fs::write(path, b"not an index").unwrap();
                }
            }
        })
        .await;
    app.wait_search(&[("q", "manual")], &["docs/manual.pdf"], DEADLINE)
        .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn files_changed_while_the_server_was_down_are_reindexed_on_start() {
    let app = spawn_app().await;
    library(&app).await;
    let app = app
        .restart(|project| {
            let uploads = project.join("uploads");
            std::fs::write(uploads.join("movies/notes.txt"), b"now much longer text").unwrap();
            std::fs::remove_file(uploads.join("readme.md")).unwrap();
            std::fs::write(uploads.join("dropped.txt"), b"dropped by hand").unwrap();
            let meta = uploads.join(".meta/docs/manual.pdf.yaml");
            let text = std::fs::read_to_string(&meta).unwrap();
            std::fs::write(&meta, text.replace("title: Manual", "title: Handbook")).unwrap();
        })
        .await;
    app.wait_search(&[("q", "handbook")], &["docs/manual.pdf"], DEADLINE)
        .await;
    app.wait_search(&[("q", "dropped")], &["dropped.txt"], DEADLINE)
        .await;
    app.wait_search(&[("q", "readme")], &[], DEADLINE).await;
    let body = app
        .wait_search(&[("q", "notes")], &["movies/notes.txt"], DEADLINE)
        .await;
    assert_eq!(body["data"][0]["filesize"], 20);
}
