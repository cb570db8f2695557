//! Operations on the same path are serialised.

use std::collections::HashSet;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread")]
async fn eight_clients_adding_fields_to_one_file_keep_all_200() {
    let app = std::sync::Arc::new(spawn_app().await);
    app.uploaded("", "shared.txt", b"s").await;
    let mut tasks = Vec::new();
    for c in 0..8 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            for f in 0..25 {
                let field = format!("c{c}_f{f}");
                let res = app
                    .call(
                        Method::POST,
                        "/api/files/meta",
                        json!({"path": "shared.txt", "field": field, "value": f}),
                    )
                    .await;
                assert_eq!(res.status(), StatusCode::OK, "{field}");
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let d = app.fetch("shared.txt").await.json::<Value>().await.unwrap()["data"].clone();
    let fields = d
        .as_object()
        .unwrap()
        .keys()
        .filter(|k| k.starts_with('c') && k.contains("_f"))
        .count();
    assert_eq!(fields, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_clients_moving_one_file_leave_exactly_one_winner() {
    let app = std::sync::Arc::new(spawn_app().await);
    let original = app.uploaded("", "one.txt", b"only one").await;
    let mut tasks = Vec::new();
    for n in 0..10 {
        let app = app.clone();
        tasks.push(tokio::spawn(async move {
            let res = app
                .call(
                    Method::PUT,
                    "/api/files",
                    json!({"path": "one.txt", "new_path": format!("t{n}/one.txt")}),
                )
                .await;
            (n, res.status())
        }));
    }
    let mut winners = Vec::new();
    for t in tasks {
        let (n, status) = t.await.unwrap();
        match status {
            StatusCode::OK => winners.push(n),
            StatusCode::NOT_FOUND | StatusCode::CONFLICT => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one move wins");
    let w = winners[0];
    let present: HashSet<usize> = (0..10)
        .filter(|n| app.file_path(&format!("t{n}/one.txt")).exists())
        .collect();
    assert_eq!(present, HashSet::from([w]));
    assert!(!app.file_path("one.txt").exists());
    let d = app
        .fetch(&format!("t{w}/one.txt"))
        .await
        .json::<Value>()
        .await
        .unwrap()["data"]
        .clone();
    assert_eq!(d["uuid"], original["uuid"]);
}
