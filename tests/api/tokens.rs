//! Tokens (SPEC §2): where they are read from, what each kind allows, limits, and tokens
//! created, disabled or revoked on disk while the server runs.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use flextype::auth::{TokenKind, TokenStore};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

/// A token that is well-formed but was never created.
const UNKNOWN: &str = "0123456789abcdef0123456789abcdef";

fn store(app: &TestApp) -> TokenStore {
    TokenStore::new(&app.project.join("tokens"), false)
}

fn token_file(app: &TestApp, kind: TokenKind, id: &str) -> PathBuf {
    app.project
        .join("tokens")
        .join(kind.dir_name())
        .join(id)
        .join("token.yaml")
}

fn read_yaml(path: &std::path::Path) -> serde_yaml::Value {
    serde_yaml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `GET /api/files?path=` (the root folder) with this files token.
async fn read_root(app: &TestApp, token: &str) -> reqwest::Response {
    app.client
        .get(app.url("/api/files"))
        .query(&[("path", ""), ("token", token)])
        .send()
        .await
        .unwrap()
}

/// A JSON call whose body is sent exactly as given (no tokens added).
async fn raw_call(app: &TestApp, method: Method, route: &str, body: Value) -> reqwest::Response {
    app.client
        .request(method, app.url(route))
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Asserts a 401 JSON error whose code names a token problem.
async fn assert_unauthorized(res: reqwest::Response) {
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "body: {body}");
    assert_eq!(body["http_status_code"], 401, "body: {body}");
    assert!(
        body["code"]
            .as_str()
            .is_some_and(|c| c.starts_with("token-")),
        "body: {body}"
    );
}

fn meta_text(app: &TestApp, rel: &str) -> String {
    std::fs::read_to_string(app.meta_path(rel)).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_without_a_token_is_401_token_required() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/api/files"))
        .query(&[("path", "")])
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_or_malformed_token_is_401_token_invalid() {
    let app = spawn_app().await;
    for bad in [
        UNKNOWN,
        "abc",
        "not a token at all",
        &app.files_token[..31],
        &format!("{}0", app.files_token),
    ] {
        let res = read_root(&app, bad).await;
        assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_is_not_a_files_token() {
    let app = spawn_app().await;
    let res = read_root(&app, &app.access_token).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_files_token_in_the_query_reads() {
    let app = spawn_app().await;
    let res = read_root(&app, &app.files_token).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body, json!({"data": {}}));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_files_token_in_an_authorization_bearer_or_token_header_reads() {
    let app = spawn_app().await;
    for scheme in ["Bearer", "Token"] {
        let res = app
            .client
            .get(app.url("/api/files"))
            .query(&[("path", "")])
            .header("Authorization", format!("{scheme} {}", app.files_token))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK, "scheme {scheme}");
    }
    let res = app
        .client
        .get(app.url("/api/files"))
        .query(&[("path", "")])
        .header("Authorization", format!("Bearer {UNKNOWN}"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_access_token_in_the_x_access_token_header_writes() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"hello").await;
    let res = app
        .client
        .post(app.url("/api/files/meta"))
        .header("Authorization", format!("Bearer {}", app.files_token))
        .header("X-Access-Token", &app.access_token)
        .json(&json!({"path": "a.txt", "field": "alt", "value": "by header"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["data"]["alt"], "by header");
    assert!(meta_text(&app, "a.txt").contains("by header"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_with_only_a_files_token_is_401_and_changes_nothing() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"hello").await;
    let before = meta_text(&app, "a.txt");

    let res = raw_call(
        &app,
        Method::POST,
        "/api/files/meta",
        json!({"path": "a.txt", "field": "alt", "value": "x", "token": app.files_token}),
    )
    .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;

    let res = raw_call(
        &app,
        Method::DELETE,
        "/api/files",
        json!({"path": "a.txt", "token": app.files_token}),
    )
    .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;

    // The files token sent where the access token belongs is no access token either.
    let res = raw_call(
        &app,
        Method::DELETE,
        "/api/files",
        json!({"path": "a.txt", "token": app.files_token, "access_token": app.files_token}),
    )
    .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;

    // An upload with only a files token stores nothing.
    let form = reqwest::multipart::Form::new()
        .text("token", app.files_token.clone())
        .text("folder", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"sneaky".to_vec()).file_name("b.txt"),
        );
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;

    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"hello");
    assert_eq!(meta_text(&app, "a.txt"), before);
    assert!(!app.file_path("b.txt").exists());
    assert!(temp_files(&app.project).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_null_or_empty_access_token_in_a_json_body_is_refused_not_skipped() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"hello").await;
    let before = meta_text(&app, "a.txt");
    for access in [Value::Null, json!(""), json!(12), json!([app.access_token])] {
        let res = raw_call(
            &app,
            Method::POST,
            "/api/files/meta",
            json!({"path": "a.txt", "field": "alt", "value": "x",
                   "token": app.files_token, "access_token": access}),
        )
        .await;
        assert_unauthorized(res).await;
        let res = raw_call(
            &app,
            Method::DELETE,
            "/api/files",
            json!({"path": "a.txt", "token": app.files_token, "access_token": access}),
        )
        .await;
        assert_unauthorized(res).await;
    }
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"hello");
    assert_eq!(meta_text(&app, "a.txt"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_null_or_empty_files_token_in_a_json_body_is_refused_not_skipped() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"hello").await;
    let before = meta_text(&app, "a.txt");
    for files in [Value::Null, json!("")] {
        let res = raw_call(
            &app,
            Method::POST,
            "/api/files/meta",
            json!({"path": "a.txt", "field": "alt", "value": "x",
                   "token": files, "access_token": app.access_token}),
        )
        .await;
        assert_unauthorized(res).await;
        let res = raw_call(
            &app,
            Method::DELETE,
            "/api/files",
            json!({"path": "a.txt", "token": files, "access_token": app.access_token}),
        )
        .await;
        assert_unauthorized(res).await;
    }
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"hello");
    assert_eq!(meta_text(&app, "a.txt"), before);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_with_a_call_limit_answers_429_after_the_limit() {
    let app = spawn_app().await;
    let (_, token) = store(&app).create(TokenKind::Files, "t", 3).unwrap();
    for i in 1..=3 {
        let res = read_root(&app, token.as_str()).await;
        assert_eq!(res.status(), StatusCode::OK, "call {i} is within the limit");
    }
    let res = read_root(&app, token.as_str()).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "token-limit-reached").await;
    let res = read_root(&app, token.as_str()).await;
    assert_error(res, StatusCode::TOO_MANY_REQUESTS, "token-limit-reached").await;
    // Other tokens are not affected.
    assert_eq!(
        read_root(&app, &app.files_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_created_while_the_server_runs_works_on_the_next_request() {
    let app = spawn_app().await;
    // The server has read the token folder once already.
    assert_eq!(
        read_root(&app, &app.files_token).await.status(),
        StatusCode::OK
    );
    let (_, files) = store(&app).create(TokenKind::Files, "new", 0).unwrap();
    let (_, access) = store(&app).create(TokenKind::Access, "new", 0).unwrap();
    assert_eq!(
        read_root(&app, files.as_str()).await.status(),
        StatusCode::OK
    );
    let form = reqwest::multipart::Form::new()
        .text("token", files.as_str().to_string())
        .text("access_token", access.as_str().to_string())
        .text("folder", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"fresh".to_vec()).file_name("new.txt"),
        );
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(std::fs::read(app.file_path("new.txt")).unwrap(), b"fresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_disabled_by_hand_is_401_token_disabled_on_the_next_request() {
    let app = spawn_app().await;
    let (id, token) = store(&app).create(TokenKind::Files, "t", 0).unwrap();
    assert_eq!(
        read_root(&app, token.as_str()).await.status(),
        StatusCode::OK
    );
    let file = token_file(&app, TokenKind::Files, &id);
    // Let the background flush record the call first, so it does not race the hand edit.
    wait_for_calls(&file, 1).await;

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("state: enabled"), "{text}");
    std::fs::write(&file, text.replace("state: enabled", "state: disabled")).unwrap();
    let res = read_root(&app, token.as_str()).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-disabled").await;

    // Enabled again by hand: it works again.
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("state: disabled", "state: enabled")).unwrap();
    assert_eq!(
        read_root(&app, token.as_str()).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_access_token_cannot_write() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"hello").await;
    let access_dir = app.project.join("tokens/access");
    let ids: Vec<_> = std::fs::read_dir(&access_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let file = token_file(&app, TokenKind::Access, &ids[0]);
    wait_for_calls(&file, 1).await;
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(&file, text.replace("state: enabled", "state: disabled")).unwrap();
    let res = app
        .call(Method::DELETE, "/api/files", json!({"path": "a.txt"}))
        .await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-disabled").await;
    assert!(app.file_path("a.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_is_401_on_the_next_request() {
    let app = spawn_app().await;
    let tokens = store(&app);
    let (by_store, t1) = tokens.create(TokenKind::Files, "one", 0).unwrap();
    let (by_hand, t2) = tokens.create(TokenKind::Files, "two", 0).unwrap();
    for t in [&t1, &t2] {
        assert_eq!(read_root(&app, t.as_str()).await.status(), StatusCode::OK);
    }

    assert!(tokens.revoke(&by_store).unwrap());
    let res = read_root(&app, t1.as_str()).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;

    std::fs::remove_dir_all(app.project.join("tokens/files").join(&by_hand)).unwrap();
    let res = read_root(&app, t2.as_str()).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;

    // The others keep working.
    assert_eq!(
        read_root(&app, &app.files_token).await.status(),
        StatusCode::OK
    );
}

/// Polls a token file until its `calls` reaches `n` (the counters are flushed in the
/// background); returns the parsed file.
async fn wait_for_calls(file: &std::path::Path, n: u64) -> serde_yaml::Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let y = read_yaml(file);
        let calls = y["calls"].as_u64().unwrap_or(0);
        if calls >= n {
            return y;
        }
        assert!(
            Instant::now() < deadline,
            "calls in {} stayed at {calls}, expected {n}",
            file.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn call_counters_are_written_to_the_token_file_which_never_holds_the_token() {
    let app = spawn_app().await;
    let (id, token) = store(&app).create(TokenKind::Files, "counted", 0).unwrap();
    let file = token_file(&app, TokenKind::Files, &id);
    for _ in 0..5 {
        assert_eq!(
            read_root(&app, token.as_str()).await.status(),
            StatusCode::OK
        );
    }
    let y = wait_for_calls(&file, 5).await;
    assert_eq!(y["calls"].as_u64(), Some(5), "{y:?}");
    assert_eq!(
        y["hash"].as_str(),
        Some(blake3_hex(token.as_str().as_bytes()).as_str())
    );
    assert_eq!(y["title"].as_str(), Some("counted"));
    assert_eq!(y["state"].as_str(), Some("enabled"));

    // More calls add up.
    for _ in 0..3 {
        assert_eq!(
            read_root(&app, token.as_str()).await.status(),
            StatusCode::OK
        );
    }
    let y = wait_for_calls(&file, 8).await;
    assert_eq!(y["calls"].as_u64(), Some(8), "{y:?}");

    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        !text.contains(token.as_str()),
        "the token file holds the token itself: {text}"
    );
    // Nor does any other file under tokens/.
    for e in walkdir::WalkDir::new(app.project.join("tokens")) {
        let e = e.unwrap();
        assert!(!e.file_name().to_string_lossy().contains(token.as_str()));
        if e.file_type().is_file() {
            let t = std::fs::read_to_string(e.path()).unwrap();
            assert!(!t.contains(token.as_str()), "{}", e.path().display());
        }
    }
    assert!(temp_files(&app.project.join("tokens")).is_empty());
}

/// Puts a Flextype-style plaintext token on disk: the folder name is the token.
fn put_legacy_token(app: &TestApp, kind: TokenKind, token: &str) {
    let dir = app.project.join("tokens").join(kind.dir_name()).join(token);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token.yaml"), "title: old\nstate: enabled\n").unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_plaintext_token_is_refused_by_default() {
    let app = spawn_app().await;
    let legacy = "feedfacecafebeef0123456789abcdef";
    put_legacy_token(&app, TokenKind::Files, legacy);
    let res = read_root(&app, legacy).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_legacy_plaintext_token_is_accepted_when_the_config_allows_it() {
    let app = spawn_app_with(|c| c.tokens.legacy_plaintext = true).await;
    let files = "feedfacecafebeef0123456789abcdef";
    let access = "0badc0de0badc0de0badc0de0badc0de";
    put_legacy_token(&app, TokenKind::Files, files);
    put_legacy_token(&app, TokenKind::Access, access);
    assert_eq!(read_root(&app, files).await.status(), StatusCode::OK);

    // Both legacy kinds together can write.
    let form = reqwest::multipart::Form::new()
        .text("token", files.to_string())
        .text("access_token", access.to_string())
        .text("folder", "")
        .part(
            "file",
            reqwest::multipart::Part::bytes(b"old style".to_vec()).file_name("old.txt"),
        );
    let res = app
        .client
        .post(app.url("/api/files"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);

    // A plaintext folder that is not a token's shape is still no token.
    put_legacy_token(&app, TokenKind::Files, "not-a-token");
    let res = read_root(&app, "not-a-token").await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-invalid").await;
    // Hashed tokens keep working alongside.
    assert_eq!(
        read_root(&app, &app.files_token).await.status(),
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_disabled_legacy_token_is_refused_even_when_legacy_tokens_are_allowed() {
    let app = spawn_app_with(|c| c.tokens.legacy_plaintext = true).await;
    let legacy = "feedfacecafebeef0123456789abcdef";
    let dir = app.project.join("tokens/files").join(legacy);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token.yaml"), "title: old\nstate: disabled\n").unwrap();
    let res = read_root(&app, legacy).await;
    assert_error(res, StatusCode::UNAUTHORIZED, "token-disabled").await;
}
