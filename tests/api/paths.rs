//! Path containment (SPEC §3): escape attempts through every door that takes a path, symlinks
//! out of and within the tree, and awkward but legal names.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

const SECRET: &[u8] = b"TOP-SECRET: the server must never hand this out";
const FILE: &[u8] = b"an ordinary file that may be moved";

/// A response read straight off the socket.
struct Raw {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Raw {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `GET <target>` exactly as written: HTTP clients normalise `..`, `%2e%2e` and `\` in
/// URLs before sending, which would hide what the server does with them.
async fn raw_get(app: &TestApp, target: &str) -> Raw {
    let host = app.address.trim_start_matches("http://").to_string();
    let mut stream = tokio::net::TcpStream::connect(&host).await.unwrap();
    let request = format!("GET {target} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(60),
        stream.read_to_end(&mut buf),
    )
    .await
    .expect("the server answers and closes")
    .unwrap();
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Raw {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = data.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        data = &data[eol + 2..];
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

/// Every byte as `%XX`.
fn encode_all(s: &str) -> String {
    s.bytes().map(|b| format!("%{b:02X}")).collect()
}

/// Every path segment percent-encoded, the slashes kept.
fn encode_segments(s: &str) -> String {
    s.split('/')
        .map(|seg| utf8_percent_encode(seg, NON_ALPHANUMERIC).to_string())
        .collect::<Vec<_>>()
        .join("/")
}

/// Every file and folder below `root` with its content, except the token store (its counters
/// are flushed in the background) and the rebuildable cache.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, Option<Vec<u8>>> {
    walkdir::WalkDir::new(root)
        .follow_links(false)
        .into_iter()
        .filter_entry(|e| {
            let rel = e.path().strip_prefix(root).unwrap();
            !rel.starts_with("project/tokens") && !rel.starts_with("project/cache")
        })
        .map(Result::unwrap)
        .map(|e| {
            let content = e
                .file_type()
                .is_file()
                .then(|| std::fs::read(e.path()).unwrap());
            (e.path().strip_prefix(root).unwrap().to_path_buf(), content)
        })
        .collect()
}

/// Where secrets lie outside `uploads/`: next to `project/`, and inside `project/` itself (what
/// `../` from `uploads/` reaches).
fn plant_secrets(app: &TestApp) -> Vec<PathBuf> {
    let outside = [
        app.dir.path().join("secret.txt"),
        app.project.join("secret.txt"),
    ];
    for p in &outside {
        std::fs::write(p, SECRET).unwrap();
    }
    outside.to_vec()
}

fn assert_secrets_intact(secrets: &[PathBuf], what: &str) {
    for p in secrets {
        assert_eq!(
            std::fs::read(p).unwrap_or_default(),
            SECRET,
            "{what}: {} was changed, moved or deleted",
            p.display()
        );
    }
}

fn leaks(body: &[u8]) -> bool {
    body.windows(b"TOP-SECRET".len())
        .any(|w| w == b"TOP-SECRET")
}

/// The escape table of SPEC §3. `api`: also sent as an API path parameter (the two encoded
/// forms are only escapes once a URL is decoded; as parameters they are odd but legal names).
const ESCAPES: &[(&str, bool)] = &[
    ("../secret.txt", true),
    ("a/../../secret.txt", true),
    ("a/../../../secret.txt", true),
    ("..", true),
    ("%2e%2e/secret.txt", false),
    ("%252e%252e%252fsecret.txt", false),
    ("..\\secret.txt", true),
    ("a\\b", true),
    ("/etc/passwd", true),
    ("//etc/passwd", true),
    ("a\0b", true),
    ("a\nb", true),
    ("a\rb", true),
    ("a\tb", true),
    (".meta/x.jpg.yaml", true),
    (".meta/x.jpg", true),
    (".staging/x", true),
    ("a//b", true),
    ("a/./b", true),
    ("./a", true),
    ("x.part", true),
    ("a/x.part", true),
    ("x.crdownload", true),
    ("x.tmp", true),
    ("~$x.docx", true),
];

/// The request-target forms of an escape attempt: as written (when every character may appear
/// in a URL), each segment encoded once, every byte encoded once, and encoded twice.
fn url_forms(attempt: &str) -> Vec<String> {
    let legal_raw = attempt
        .chars()
        .all(|c| c.is_ascii_graphic() && !"\\\"<>^`{|}#?".contains(c));
    let mut forms = Vec::new();
    if legal_raw {
        forms.push(attempt.to_string());
    }
    forms.push(encode_segments(attempt));
    let once = encode_all(attempt);
    forms.push(once.clone());
    forms.push(once.replace('%', "%25"));
    forms.push(encode_segments(&encode_segments(attempt)));
    forms
        .into_iter()
        .map(|f| format!("/project/uploads/{f}"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn path_escape_attempts_are_refused_everywhere_and_touch_nothing() {
    let app = spawn_app().await;
    let secrets = plant_secrets(&app);
    app.uploaded("a", "file.txt", FILE).await;
    let meta_uuid = app.uploaded("", "x.jpg", &jpeg(4, 4)).await["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    // Things that exist under names a client may never reach.
    app.put_file(".staging/x", b"TOP-SECRET staging");
    app.put_file("x.part", b"TOP-SECRET partial");
    app.put_file("x.crdownload", b"TOP-SECRET partial");
    app.put_file("x.tmp", b"TOP-SECRET partial");
    app.put_file("~$x.docx", b"TOP-SECRET lock file");
    app.put_file("a/x.part", b"TOP-SECRET partial");
    let before = snapshot(app.dir.path());

    for &(attempt, api) in ESCAPES {
        if api {
            // (a) fetch
            let res = app.fetch(attempt).await;
            assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
            let res = app
                .get_api("/api/files", &[("path", attempt), ("collection", "true")])
                .await;
            assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;

            // (b) move an existing file there
            let res = app
                .call(
                    Method::PUT,
                    "/api/files",
                    json!({"path": "a/file.txt", "new_path": attempt}),
                )
                .await;
            assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
            // and copy, for good measure
            let res = app
                .call(
                    Method::PUT,
                    "/api/files/copy",
                    json!({"path": "a/file.txt", "new_path": attempt}),
                )
                .await;
            assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;

            // (c) upload into it as the folder
            let res = app.upload(attempt, "secret.txt", b"overwritten!").await;
            assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
        }

        // (d) in the URL
        for target in url_forms(attempt) {
            let res = raw_get(&app, &target).await;
            assert!(
                res.status == 400 || res.status == 404,
                "GET {target}: status {} body {:?}",
                res.status,
                String::from_utf8_lossy(&res.body)
            );
            assert!(
                res.header("content-type")
                    .is_some_and(|c| c.starts_with("application/json")),
                "GET {target}: JSON error expected, headers {:?}",
                res.headers
            );
            let body: Value = serde_json::from_slice(&res.body)
                .unwrap_or_else(|_| panic!("GET {target}: body is not JSON"));
            assert_eq!(body["http_status_code"], res.status, "GET {target}: {body}");
            assert!(!leaks(&res.body), "GET {target} leaks a secret");
            assert!(
                !String::from_utf8_lossy(&res.body).contains(&meta_uuid),
                "GET {target} leaks meta"
            );
            assert!(
                !res.body.windows(5).any(|w| w == b"root:"),
                "GET {target} leaks /etc/passwd"
            );
        }

        assert_secrets_intact(&secrets, attempt);
        assert_eq!(
            snapshot(app.dir.path()),
            before,
            "{attempt:?}: something was written, moved or deleted"
        );
    }
    assert_eq!(std::fs::read(app.file_path("a/file.txt")).unwrap(), FILE);
    assert!(temp_files(app.dir.path()).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn id_alias_and_delete_refuse_escapes_too() {
    let app = spawn_app().await;
    let secrets = plant_secrets(&app);
    app.uploaded("a", "file.txt", FILE).await;
    let before = snapshot(app.dir.path());
    for attempt in [
        "../secret.txt",
        "a/../../secret.txt",
        "/etc/passwd",
        "..\\secret.txt",
    ] {
        let res = app.get_api("/api/files", &[("id", attempt)]).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
        let res = app
            .call(Method::DELETE, "/api/files", json!({"path": attempt}))
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
        // The escape as the source of a move.
        let res = app
            .call(
                Method::PUT,
                "/api/files",
                json!({"path": attempt, "new_path": "a/stolen.txt"}),
            )
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
        assert_secrets_intact(&secrets, attempt);
    }
    assert_eq!(snapshot(app.dir.path()), before);
}

// ---------------------------------------------------------------------------------------------
// Symlinks

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn symlink_to_a_folder_outside_the_tree_is_refused() {
    let app = spawn_app().await;
    let outside = app.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret.txt"), SECRET).unwrap();
    std::os::unix::fs::symlink(&outside, app.file_path("link")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret.txt"), app.file_path("secret-link.txt"))
        .unwrap();
    app.uploaded("a", "file.txt", FILE).await;
    let secrets = vec![outside.join("secret.txt")];
    let before = snapshot(app.dir.path());

    for path in [
        "link/secret.txt",
        "link",
        "secret-link.txt",
        "link/new/deeper.txt",
    ] {
        let res = app.fetch(path).await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    let res = app
        .get_api("/api/files", &[("path", "link"), ("collection", "true")])
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;

    for target in [
        "/project/uploads/link/secret.txt",
        "/project/uploads/link%2Fsecret.txt",
        "/project/uploads/secret-link.txt",
    ] {
        let res = raw_get(&app, target).await;
        assert!(
            res.status == 400 || res.status == 404,
            "GET {target}: {}",
            res.status
        );
        assert!(
            res.header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "GET {target}: JSON error expected"
        );
        assert!(!leaks(&res.body), "GET {target} leaks the secret");
    }

    for folder in ["link", "link/sub"] {
        let res = app.upload(folder, "dropped.txt", b"written outside!").await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    for new_path in ["link/moved.txt", "link/secret.txt", "secret-link.txt"] {
        let res = app
            .call(
                Method::PUT,
                "/api/files",
                json!({"path": "a/file.txt", "new_path": new_path}),
            )
            .await;
        assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;
    }
    let res = app
        .call(
            Method::DELETE,
            "/api/files",
            json!({"path": "link/secret.txt"}),
        )
        .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-path").await;

    assert_secrets_intact(&secrets, "symlink");
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        ["secret.txt"],
        "nothing was written outside the tree"
    );
    assert_eq!(snapshot(app.dir.path()), before);
    assert_eq!(std::fs::read(app.file_path("a/file.txt")).unwrap(), FILE);
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn symlink_to_a_folder_inside_the_tree_works_for_fetch_and_serve() {
    let app = spawn_app().await;
    app.uploaded("real", "inside.txt", b"reachable through an alias")
        .await;
    std::os::unix::fs::symlink(app.file_path("real"), app.file_path("alias")).unwrap();
    let res = app.fetch("alias/inside.txt").await;
    assert_eq!(res.status(), StatusCode::OK);
    let d = res.json::<Value>().await.unwrap()["data"].clone();
    assert_eq!(d["path"], "alias/inside.txt");
    assert_eq!(d["hash"], blake3_hex(b"reachable through an alias"));

    let res = app
        .client
        .get(app.url("/project/uploads/alias/inside.txt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        res.bytes().await.unwrap(),
        b"reachable through an alias".as_slice()
    );
}

// ---------------------------------------------------------------------------------------------
// Awkward names

const AWKWARD: &[&str] = &[
    "Été à Paris.txt",
    "two  spaces here.txt",
    "it's \"quoted\".txt",
    "party 🎉🦀.txt",
    "100% sure #1?.txt",
    "a+b=c&d;e,f[g]{h}.txt",
    "日本語のファイル.txt",
];

#[tokio::test(flavor = "multi_thread")]
async fn awkward_names_are_stored_fetched_listed_and_served_exactly() {
    let app = spawn_app_with(|c| c.media.safe_names = false).await;
    for (i, name) in AWKWARD.iter().enumerate() {
        let bytes = format!("content of file {i}: {name}").into_bytes();
        let d = app.uploaded("awk", name, &bytes).await;
        assert_eq!(d["filename"], *name, "stored under the exact name");
        assert_eq!(d["path"], format!("awk/{name}"));
        assert_eq!(
            std::fs::read(app.file_path(&format!("awk/{name}"))).unwrap(),
            bytes,
            "{name} on disk"
        );

        let res = app.fetch(&format!("awk/{name}")).await;
        assert_eq!(res.status(), StatusCode::OK, "{name}");
        let fetched = res.json::<Value>().await.unwrap()["data"].clone();
        assert_eq!(fetched["filename"], *name);
        assert_eq!(fetched["hash"], blake3_hex(&bytes));

        let url = app.url(&format!("/project/uploads/awk/{}", encode_segments(name)));
        let res = app.client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::OK, "{url}");
        assert_eq!(res.bytes().await.unwrap(), bytes, "{url}");

        // `full_url` is a URL that resolves as it is.
        let full_url = fetched["full_url"].as_str().unwrap().to_string();
        assert!(
            !full_url.contains(' ') && !full_url.contains('"'),
            "spaces and quotes are percent-encoded: {full_url}"
        );
        let after_host = full_url.trim_start_matches(&app.address);
        assert!(
            !after_host.contains('#') && !after_host.contains('?'),
            "# and ? are percent-encoded: {full_url}"
        );
        let raw = raw_get(&app, after_host).await;
        assert_eq!(raw.status, 200, "full_url {full_url}");
        assert_eq!(raw.body, bytes, "full_url {full_url}");
        let url_field = fetched["url"].as_str().unwrap();
        assert_eq!(
            format!("/{url_field}"),
            after_host,
            "url and full_url agree"
        );
    }
    let res = app.get_api("/api/files", &[("path", "awk")]).await;
    assert_eq!(res.status(), StatusCode::OK);
    let listed = res.json::<Value>().await.unwrap()["data"].clone();
    let keys: Vec<&str> = listed
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    for name in AWKWARD {
        assert!(keys.contains(name), "{name} listed; keys {keys:?}");
        assert_eq!(listed[*name]["filename"], *name);
    }
    assert_eq!(keys.len(), AWKWARD.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn awkward_names_can_be_moved_to_and_from() {
    let app = spawn_app_with(|c| c.media.safe_names = false).await;
    app.uploaded("m", "plain.txt", b"moving").await;
    let mut from = "m/plain.txt".to_string();
    for name in AWKWARD {
        let to = format!("m/sub dir/{name}");
        let res = app
            .call(
                Method::PUT,
                "/api/files",
                json!({"path": from, "new_path": to}),
            )
            .await;
        assert_eq!(res.status(), StatusCode::OK, "move {from} -> {to}");
        let d = res.json::<Value>().await.unwrap()["data"].clone();
        assert_eq!(d["path"], to);
        assert_eq!(std::fs::read(app.file_path(&to)).unwrap(), b"moving");
        assert!(app.meta_path(&to).exists(), "meta moved along");
        from = to;
    }
}

/// Control characters never end up in a stored name. Note: a newline cannot reach the name
/// rules through multipart at all — reqwest sends it as a `\`+LF quoted-pair, which the
/// part-header parser refuses (400 `bad-multipart`); browsers send `%0A` instead.
async fn assert_newline_upload_stores_no_control_chars(app: &TestApp, slug: Option<&str>) {
    let before = snapshot(app.dir.path());
    let res = app.upload("nl", "a\nb.txt", b"newline").await;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    match (status, slug) {
        (StatusCode::BAD_REQUEST, _) => {
            assert_eq!(body["http_status_code"], 400, "{body}");
            assert_eq!(snapshot(app.dir.path()), before, "nothing written");
        }
        (StatusCode::OK, Some(slug)) => {
            assert_eq!(body["data"]["filename"], slug, "{body}");
            assert_eq!(
                std::fs::read(app.file_path(&format!("nl/{slug}"))).unwrap(),
                b"newline"
            );
        }
        _ => panic!("newline name: unexpected {status}: {body}"),
    }
    let bad: Vec<_> = walkdir::WalkDir::new(app.dir.path())
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .chars()
                .any(char::is_control)
        })
        .map(|e| e.path().to_path_buf())
        .collect();
    assert!(bad.is_empty(), "names with control characters: {bad:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn name_with_a_newline_is_refused_without_safe_names() {
    let app = spawn_app_with(|c| c.media.safe_names = false).await;
    assert_newline_upload_stores_no_control_chars(&app, None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn name_with_a_newline_is_refused_or_slugified_with_safe_names() {
    let app = spawn_app().await;
    assert_newline_upload_stores_no_control_chars(&app, Some("a-b.txt")).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn url_that_is_not_utf8_after_decoding_is_400() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"x").await;
    for target in ["/project/uploads/%FF.txt", "/project/uploads/a%C3.txt"] {
        let res = raw_get(&app, target).await;
        assert_eq!(res.status, 400, "{target}");
        let body: Value = serde_json::from_slice(&res.body).unwrap();
        assert_eq!(body["code"], "invalid-path", "{target}: {body}");
    }
}

/// The in-memory cache also holds by-hash answers; a URL that decodes to the same text as one
/// of their keys is still a path with a NUL in it, and must be refused like any other.
#[tokio::test(flavor = "multi_thread")]
async fn url_with_nul_is_refused_even_when_it_spells_a_cached_hash() {
    let app = spawn_app().await;
    let bytes = b"content that is also reachable by hash";
    app.uploaded("", "h.txt", bytes).await;
    let hash = blake3_hex(bytes);
    for _ in 0..2 {
        let res = app
            .client
            .get(app.url(&format!("/media/{hash}.txt")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }
    for target in [
        format!("/project/uploads/%00media/{hash}.txt"),
        format!("/project/uploads/%00media%2F{hash}.txt"),
    ] {
        let res = raw_get(&app, &target).await;
        assert_eq!(
            res.status,
            400,
            "GET {target}: a NUL in a URL path is a 400 (SPEC §3); got body {:?}",
            String::from_utf8_lossy(&res.body)
        );
        let body: Value = serde_json::from_slice(&res.body).unwrap_or(Value::Null);
        assert_eq!(body["code"], "invalid-path", "GET {target}: {body}");
    }
}
