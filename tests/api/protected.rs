//! Protected files: `media.protected` globs and meta `protected: true`; file tokens
//! (`POST /api/files/token`), signed URLs (`POST /api/files/sign-urls`), hash URLs of protected
//! content, and what listings and search show to a caller holding only a file token.

use std::time::Duration;

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::helpers::{assert_error, blake3_hex, hit_paths, spawn_app_with, until, TestApp};

const SECRET: &[u8] = b"the launch code is 0000\n";
const PUBLIC: &[u8] = b"opening hours: 9 to 5\n";

async fn protected_app() -> TestApp {
    let app = spawn_app_with(|c| c.media.protected = vec!["private/**".into()]).await;
    app.uploaded("private", "plan.txt", SECRET).await;
    app.uploaded("public", "hours.txt", PUBLIC).await;
    app
}

/// Sets `protected: true` in a file's meta through the API.
async fn mark_protected(app: &TestApp, path: &str) {
    app.called(
        Method::POST,
        "/api/files/meta",
        json!({"path": path, "field": "protected", "value": true}),
    )
    .await;
}

async fn get(app: &TestApp, path_and_query: &str) -> Response {
    app.client
        .get(app.url(path_and_query))
        .send()
        .await
        .unwrap()
}

/// Asserts that a GET is refused with 403 and this code.
async fn forbidden(app: &TestApp, path_and_query: &str, code: &str) {
    assert_error(get(app, path_and_query).await, StatusCode::FORBIDDEN, code).await;
}

async fn body_of(res: Response) -> Vec<u8> {
    assert_eq!(res.status(), StatusCode::OK);
    res.bytes().await.unwrap().to_vec()
}

async fn file_token(app: &TestApp) -> String {
    let res = app
        .client
        .post(app.url("/api/files/token"))
        .bearer_auth(&app.files_token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    body["token"].as_str().unwrap().to_string()
}

async fn sign(app: &TestApp, body: Value) -> Response {
    app.client
        .post(app.url("/api/files/sign-urls"))
        .bearer_auth(&app.files_token)
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// The first signed URL of a sign-urls call, relative to the server.
async fn signed_url(app: &TestApp, body: Value) -> String {
    let res = sign(app, body).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body: Value = res.json().await.unwrap();
    let url = body["items"][0]["url"].as_str().unwrap();
    url.strip_prefix(&app.address).unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_protected_path_answers_403_without_a_credential_whether_it_exists_or_not() {
    let app = protected_app().await;
    forbidden(&app, "/project/uploads/private/plan.txt", "file-protected").await;
    forbidden(
        &app,
        "/project/uploads/private/nothing-here.txt",
        "file-protected",
    )
    .await;
    forbidden(
        &app,
        "/project/uploads/private/plan.txt?token=1.2.3",
        "file-token-invalid",
    )
    .await;
    // The API token is not a file token: it never opens content by URL.
    let with_api_token = format!(
        "/project/uploads/private/plan.txt?token={}",
        app.files_token
    );
    assert_eq!(
        get(&app, &with_api_token).await.status(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        body_of(get(&app, "/project/uploads/public/hours.txt").await).await,
        PUBLIC
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_token_opens_protected_files_privately_and_expires() {
    let app = spawn_app_with(|c| {
        c.media.protected = vec!["private".into()];
        c.tokens.file_token_ttl_s = 1;
    })
    .await;
    app.uploaded("private/deep", "plan.txt", SECRET).await;
    let token = file_token(&app).await;
    let with_token = format!("/project/uploads/private/deep/plan.txt?token={token}");
    let res = get(&app, &with_token).await;
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(body_of(res).await, SECRET);
    let missing = get(
        &app,
        &format!("/project/uploads/private/none.txt?token={token}"),
    )
    .await;
    assert_eq!(
        missing.status(),
        StatusCode::NOT_FOUND,
        "a holder may learn it is missing"
    );
    let tampered = token.replacen('.', "9.", 1);
    let tampered = format!("/project/uploads/private/deep/plan.txt?token={tampered}");
    forbidden(&app, &tampered, "file-token-invalid").await;
    until(
        "the file token to expire",
        Duration::from_secs(15),
        || async { (get(&app, &with_token).await.status() == StatusCode::FORBIDDEN).then_some(()) },
    )
    .await;
    forbidden(&app, &with_token, "file-token-expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_file_token_route_needs_a_files_token_and_a_file_token_cannot_renew_itself() {
    let app = protected_app().await;
    let res = app
        .client
        .post(app.url("/api/files/token"))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
    let token = file_token(&app).await;
    let res = app
        .client
        .post(app.url("/api/files/token"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread")]
async fn meta_protected_true_closes_a_file_at_once_even_after_it_was_served() {
    let app = protected_app().await;
    let url = "/project/uploads/public/hours.txt";
    for _ in 0..3 {
        assert_eq!(body_of(get(&app, url).await).await, PUBLIC);
    }
    mark_protected(&app, "public/hours.txt").await;
    forbidden(&app, url, "file-protected").await;
    let by_hash = format!("/media/{}.txt", blake3_hex(PUBLIC));
    forbidden(&app, &by_hash, "file-protected").await;
    let token = file_token(&app).await;
    assert_eq!(
        body_of(get(&app, &format!("{url}?token={token}")).await).await,
        PUBLIC
    );

    // Opened again by hand in the YAML: public on the next request.
    let meta = std::fs::read_to_string(app.meta_path("public/hours.txt")).unwrap();
    std::fs::write(
        app.meta_path("public/hours.txt"),
        meta.replace("protected: true", "protected: false"),
    )
    .unwrap();
    assert_eq!(body_of(get(&app, url).await).await, PUBLIC);
    // And closed again by hand.
    std::fs::write(app.meta_path("public/hours.txt"), meta).unwrap();
    forbidden(&app, url, "file-protected").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_signed_url_opens_its_path_only_until_it_expires() {
    let app = protected_app().await;
    app.uploaded("private", "other.txt", b"another secret\n")
        .await;
    let res = sign(&app, json!({"paths": ["private/plan.txt"]})).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["cache-control"], "no-store");
    let body: Value = res.json().await.unwrap();
    let item = &body["items"][0];
    assert_eq!(item["path"], "private/plan.txt");
    assert!(item["expiresAt"].as_str().unwrap().ends_with('Z'), "{item}");
    let url = item["url"].as_str().unwrap();
    assert!(url.starts_with(&app.address), "{url}");
    let url = url.strip_prefix(&app.address).unwrap().to_string();
    let res = get(&app, &url).await;
    assert_eq!(res.headers()["cache-control"], "private, no-cache");
    assert_eq!(body_of(res).await, SECRET);

    let other_path = url.replace("private/plan.txt", "private/other.txt");
    forbidden(&app, &other_path, "signature-invalid").await;
    let (head, sig) = url.split_once("&sig=").unwrap();
    let expires: u64 = head.rsplit_once("expires=").unwrap().1.parse().unwrap();
    let later = url.replace(
        &format!("expires={expires}"),
        &format!("expires={}", expires + 3600),
    );
    forbidden(&app, &later, "signature-invalid").await;
    let bad_sig = format!("{head}&sig={}", "0".repeat(sig.len()));
    forbidden(&app, &bad_sig, "signature-invalid").await;
    let short = signed_url(
        &app,
        json!({"paths": ["private/plan.txt"], "expires_in": 1}),
    )
    .await;
    until(
        "the signed URL to expire",
        Duration::from_secs(15),
        || async { (get(&app, &short).await.status() == StatusCode::FORBIDDEN).then_some(()) },
    )
    .await;
    forbidden(&app, &short, "signature-expired").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_urls_caps_the_lifetime_and_refuses_bad_requests() {
    let app = spawn_app_with(|c| {
        c.media.protected = vec!["private/**".into()];
        c.tokens.max_signed_url_ttl_s = 100;
    })
    .await;
    app.uploaded("private", "plan.txt", SECRET).await;
    let url = signed_url(
        &app,
        json!({"paths": ["private/plan.txt"], "expires_in": 999_999}),
    )
    .await;
    let expires: u64 = url
        .split("expires=")
        .nth(1)
        .unwrap()
        .split('&')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(expires <= now + 100, "capped at 100 s: {expires} vs {now}");
    for (body, status, code) in [
        (json!({}), StatusCode::BAD_REQUEST, "missing-parameter"),
        (
            json!({"paths": []}),
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            json!({"paths": [1]}),
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            json!({"paths": ["../x"]}),
            StatusCode::BAD_REQUEST,
            "invalid-path",
        ),
        (
            json!({"paths": ["private/none.txt"]}),
            StatusCode::NOT_FOUND,
            "file-not-found",
        ),
        (
            json!({"paths": ["private"]}),
            StatusCode::NOT_FOUND,
            "file-not-found",
        ),
        (
            json!({"paths": ["private/plan.txt"], "hashes": ["x"]}),
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
        (
            json!({"hashes": ["nothex"]}),
            StatusCode::BAD_REQUEST,
            "invalid-hash",
        ),
        (
            json!({"hashes": ["0".repeat(64)]}),
            StatusCode::NOT_FOUND,
            "hash-not-found",
        ),
        (
            json!({"paths": ["private/plan.txt"], "expires_in": 0}),
            StatusCode::BAD_REQUEST,
            "invalid-parameter",
        ),
    ] {
        assert_error(sign(&app, body).await, status, code).await;
    }
    let res = app
        .client
        .post(app.url("/api/files/sign-urls"))
        .json(&json!({"paths": ["private/plan.txt"]}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn content_held_only_under_protected_paths_needs_a_credential_by_hash() {
    let app = protected_app().await;
    let hash = blake3_hex(SECRET);
    let media = format!("/media/{hash}.txt");
    forbidden(&app, &media, "file-protected").await;
    forbidden(&app, &format!("/media/{hash}"), "file-protected").await;

    let signed = signed_url(&app, json!({"hashes": [hash]})).await;
    assert!(
        signed.starts_with(&format!("/media/{hash}.txt?")),
        "{signed}"
    );
    let res = get(&app, &signed).await;
    assert_eq!(
        res.headers()["cache-control"],
        "private, max-age=31536000, immutable"
    );
    assert_eq!(body_of(res).await, SECRET);
    // A path signature does not open the hash, nor the other way round.
    let by_path = signed_url(&app, json!({"paths": ["private/plan.txt"]})).await;
    let query = by_path.split_once('?').unwrap().1;
    forbidden(&app, &format!("{media}?{query}"), "signature-invalid").await;
    let token = file_token(&app).await;
    assert_eq!(
        body_of(get(&app, &format!("{media}?token={token}")).await).await,
        SECRET
    );

    // A public copy makes the content public by hash.
    app.uploaded("public", "copy.txt", SECRET).await;
    let res = get(&app, &media).await;
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(body_of(res).await, SECRET);
}

async fn browse(app: &TestApp, token: &str, route: &str, query: &[(&str, &str)]) -> Response {
    let mut q = query.to_vec();
    q.push(("token", token));
    app.client
        .get(app.url(route))
        .query(&q)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_token_caller_sees_no_protected_file_in_listings_or_search() {
    let app = protected_app().await;
    app.uploaded("public", "secret-notes.txt", b"notes\n").await;
    mark_protected(&app, "public/secret-notes.txt").await;
    let token = file_token(&app).await;

    // API token holders see everything.
    let all = app
        .wait_search(
            &[("q", "*"), ("sort", "filename:asc")],
            &[
                "public/hours.txt",
                "private/plan.txt",
                "public/secret-notes.txt",
            ],
            Duration::from_secs(10),
        )
        .await;
    assert_eq!(all["total"], 3);

    let res = browse(&app, &token, "/api/files/search", &[("q", "*")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let found: Value = res.json().await.unwrap();
    assert_eq!(hit_paths(&found), ["public/hours.txt"]);
    assert_eq!(found["total"], 1);
    let res = browse(
        &app,
        &token,
        "/api/files/search",
        &[("q", "secret OR plan OR launch")],
    )
    .await;
    let found: Value = res.json().await.unwrap();
    assert_eq!(found["total"], 0, "{found}");

    let res = browse(&app, &token, "/api/files", &[("path", "public")]).await;
    let listed: Value = res.json().await.unwrap();
    let names: Vec<&String> = listed["data"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["hours.txt"]);
    let res = browse(
        &app,
        &token,
        "/api/files",
        &[("path", ""), ("recursive", "true")],
    )
    .await;
    let listed: Value = res.json().await.unwrap();
    let names: Vec<&String> = listed["data"].as_object().unwrap().keys().collect();
    assert_eq!(names, ["public/hours.txt"]);
    for path in [
        "private/plan.txt",
        "public/secret-notes.txt",
        "private/none.txt",
    ] {
        assert_error(
            browse(&app, &token, "/api/files", &[("path", path)]).await,
            StatusCode::FORBIDDEN,
            "file-protected",
        )
        .await;
    }
    let res = browse(&app, &token, "/api/files", &[("hash", &blake3_hex(SECRET))]).await;
    assert_error(res, StatusCode::NOT_FOUND, "hash-not-found").await;
    // A file token is no API token elsewhere.
    let res = browse(&app, &token, "/api/folders", &[("path", "public")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = app.fetch("private/plan.txt").await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the files token sees protected files"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn replacing_the_signing_key_revokes_signed_urls_and_file_tokens_without_a_restart() {
    let app = protected_app().await;
    let key_file = app.project.join("tokens").join("signing.key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the key is readable by its owner only");
    }
    let signed = signed_url(&app, json!({"paths": ["private/plan.txt"]})).await;
    let token = file_token(&app).await;
    let with_token = format!("/project/uploads/private/plan.txt?token={token}");
    assert_eq!(get(&app, &signed).await.status(), StatusCode::OK);
    assert_eq!(get(&app, &with_token).await.status(), StatusCode::OK);
    let before = std::fs::read(&key_file).unwrap();
    let (status, _, err) =
        crate::cli::run_with_project(&app.project, &["token", "rotate-key"], "rotate").await;
    assert!(status.success(), "{err}");
    assert_ne!(std::fs::read(&key_file).unwrap(), before);
    forbidden(&app, &signed, "signature-invalid").await;
    forbidden(&app, &with_token, "file-token-invalid").await;
    let fresh = signed_url(&app, json!({"paths": ["private/plan.txt"]})).await;
    assert_eq!(body_of(get(&app, &fresh).await).await, SECRET);
}

#[tokio::test(flavor = "multi_thread")]
async fn file_tokens_and_signatures_never_reach_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    std::fs::create_dir_all(&project).unwrap();
    let (files, _) = crate::cli::precreate_tokens(&project);
    let mut server = crate::cli::serve(
        dir.path(),
        &project,
        "log",
        "media: { protected: ['**'] }\n",
        &[("RUST_LOG", "debug")],
    )
    .await;
    std::fs::create_dir_all(project.join("uploads/a")).unwrap();
    std::fs::write(project.join("uploads/a/s.txt"), SECRET).unwrap();
    let client = &server.client;
    let res = client
        .post(server.url("/api/files/token"))
        .bearer_auth(&files)
        .send()
        .await
        .unwrap();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let res = client
        .post(server.url("/api/files/sign-urls"))
        .bearer_auth(&files)
        .json(&json!({"paths": ["a/s.txt"]}))
        .send()
        .await
        .unwrap();
    let url = res.json::<Value>().await.unwrap()["items"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    let sig = url.split("sig=").nth(1).unwrap().to_string();
    assert_eq!(
        client.get(&url).send().await.unwrap().status(),
        StatusCode::OK
    );
    let with_token = server.url(&format!("/project/uploads/a/s.txt?token={token}"));
    assert_eq!(
        client.get(&with_token).send().await.unwrap().status(),
        StatusCode::OK
    );
    let forged = server.url(&format!("/project/uploads/a/s.txt?token={token}0"));
    assert_eq!(
        client.get(&forged).send().await.unwrap().status(),
        StatusCode::FORBIDDEN
    );
    server.child.signal(libc::SIGTERM);
    server.child.wait_exit(Duration::from_secs(30)).await;
    let log = format!(
        "{}{}",
        server.child.stdout_text(),
        server.child.stderr_text()
    );
    for secret in [&token, &sig, &files] {
        assert!(
            !log.contains(secret.as_str()),
            "a credential was logged:\n{log}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn thumbnails_of_protected_files_need_the_same_credential_and_stay_private() {
    let app = protected_app().await;
    let photo = crate::helpers::jpeg(400, 300);
    app.uploaded("private", "photo.jpg", &photo).await;
    app.uploaded("public", "photo.jpg", &crate::helpers::jpeg(401, 300))
        .await;
    let thumb = "/project/uploads/private/photo.jpg?thumb=100x100";
    forbidden(&app, thumb, "file-protected").await;
    let token = file_token(&app).await;
    for _ in 0..2 {
        let res = get(&app, &format!("{thumb}&token={token}")).await;
        assert_eq!(res.headers()["content-type"], "image/jpeg");
        assert_eq!(res.headers()["cache-control"], "private, no-cache");
        let bytes = body_of(res).await;
        assert!(bytes.len() < photo.len(), "a thumbnail, not the original");
    }
    forbidden(&app, thumb, "file-protected").await;

    // A public thumbnail served from memory closes once its file is marked protected.
    let public = "/project/uploads/public/photo.jpg?thumb=100x100";
    for _ in 0..3 {
        assert_eq!(get(&app, public).await.status(), StatusCode::OK);
    }
    mark_protected(&app, "public/photo.jpg").await;
    forbidden(&app, public, "file-protected").await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn a_symlink_to_a_protected_file_is_protected_too() {
    let app = protected_app().await;
    app.uploaded("public", "notes.txt", b"closed by meta\n")
        .await;
    mark_protected(&app, "public/notes.txt").await;
    std::os::unix::fs::symlink("../private/plan.txt", app.file_path("public/plan-link.txt"))
        .unwrap();
    std::os::unix::fs::symlink("notes.txt", app.file_path("public/notes-link.txt")).unwrap();
    for link in ["public/plan-link.txt", "public/notes-link.txt"] {
        let url = format!("/project/uploads/{link}");
        for _ in 0..2 {
            forbidden(&app, &url, "file-protected").await;
        }
        let token = file_token(&app).await;
        assert_eq!(
            get(&app, &format!("{url}?token={token}")).await.status(),
            StatusCode::OK
        );
    }
    // A link to a file whose meta is not valid YAML is closed, as that file is.
    app.uploaded("public", "broken.txt", b"meta broken by hand\n")
        .await;
    let meta = app.meta_path("public/broken.txt");
    let text = std::fs::read_to_string(&meta).unwrap();
    std::fs::write(&meta, format!("{text}tags: [a, b\n")).unwrap();
    std::os::unix::fs::symlink("broken.txt", app.file_path("public/broken-link.txt")).unwrap();
    forbidden(
        &app,
        "/project/uploads/public/broken-link.txt",
        "file-protected",
    )
    .await;
    // A link to a public file serves, and stops serving once its target is protected.
    std::os::unix::fs::symlink("hours.txt", app.file_path("public/hours-link.txt")).unwrap();
    let url = "/project/uploads/public/hours-link.txt";
    for _ in 0..2 {
        assert_eq!(body_of(get(&app, url).await).await, PUBLIC);
    }
    mark_protected(&app, "public/hours.txt").await;
    forbidden(&app, url, "file-protected").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_whose_meta_turns_to_broken_yaml_stays_closed_until_it_is_fixed() {
    let app = protected_app().await;
    let url = "/project/uploads/public/hours.txt";
    let media = format!("/media/{}.txt", blake3_hex(PUBLIC));
    assert_eq!(body_of(get(&app, url).await).await, PUBLIC);
    mark_protected(&app, "public/hours.txt").await;
    let meta_file = app.meta_path("public/hours.txt");
    let good = std::fs::read_to_string(&meta_file).unwrap();
    std::fs::write(&meta_file, format!("{good}tags: [a, b\n")).unwrap();
    for u in [url, media.as_str()] {
        forbidden(&app, u, "file-protected").await;
    }
    let token = file_token(&app).await;
    assert_eq!(
        body_of(get(&app, &format!("{url}?token={token}")).await).await,
        PUBLIC
    );
    std::fs::write(
        &meta_file,
        good.replace("protected: true", "protected: false"),
    )
    .unwrap();
    assert_eq!(body_of(get(&app, url).await).await, PUBLIC);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_file_token_answers_to_the_files_token_that_issued_it() {
    let app = protected_app().await;
    let store = flextype::auth::TokenStore::new(&app.project.join("tokens"), false);
    let (id, limited) = store
        .create(flextype::auth::TokenKind::Files, "limited", 3)
        .unwrap();
    let res = app
        .client
        .post(app.url("/api/files/token"))
        .bearer_auth(limited.as_str())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "call 1 of 3");
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    // Browsing with the file token counts against the limited token: calls 2 and 3, then 429.
    for _ in 0..2 {
        let res = browse(&app, &token, "/api/files/search", &[("q", "*")]).await;
        assert_eq!(res.status(), StatusCode::OK);
    }
    assert_error(
        browse(&app, &token, "/api/files/search", &[("q", "*")]).await,
        StatusCode::TOO_MANY_REQUESTS,
        "token-limit-reached",
    )
    .await;
    // Content reads are not API calls: they still open, until the issuer is revoked.
    let content = format!("/project/uploads/private/plan.txt?token={token}");
    assert_eq!(body_of(get(&app, &content).await).await, SECRET);
    assert!(store.revoke(&id).unwrap());
    forbidden(&app, &content, "file-token-invalid").await;
    let res = browse(&app, &token, "/api/files", &[("path", "public")]).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
