//! `POST /api/files/from-url`: the server fetches a URL into the library, behind the SSRF
//! guard.
//!
//! Each test starts its own stand-in upstream server on a loopback address ([`Upstream`]),
//! which records every request it gets and stops when the test drops it. Tests that fetch
//! successfully turn `media.from_url.allow_private` on (the upstream is on loopback); the
//! guard's tests keep the default config and check that the upstream saw no request at all.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::helpers::*;

/// How the stand-in upstream delimits a body.
#[derive(Clone, Copy)]
enum Framing {
    Length,
    Chunked,
    /// No length at all: the body ends when the connection closes.
    Close,
}

/// What the upstream answers to one request.
enum Reply {
    Full {
        status: &'static str,
        headers: Vec<(&'static str, String)>,
        body: Vec<u8>,
        framing: Framing,
    },
    /// Reads the request and never answers.
    Stall,
    /// Sends the headers and part of the body, then nothing more.
    StallBody,
}

impl Reply {
    fn ok(content_type: &str, body: &[u8]) -> Reply {
        Reply::Full {
            status: "200 OK",
            headers: vec![("Content-Type", content_type.to_string())],
            body: body.to_vec(),
            framing: Framing::Length,
        }
    }

    fn status(status: &'static str) -> Reply {
        Reply::Full {
            status,
            headers: vec![("Content-Type", "text/plain".into())],
            body: b"nope".to_vec(),
            framing: Framing::Length,
        }
    }

    fn redirect(location: &str) -> Reply {
        Reply::Full {
            status: "302 Found",
            headers: vec![("Location", location.to_string())],
            body: Vec::new(),
            framing: Framing::Length,
        }
    }

    fn header(mut self, name: &'static str, value: &str) -> Reply {
        if let Reply::Full { headers, .. } = &mut self {
            headers.push((name, value.to_string()));
        }
        self
    }

    fn framed(mut self, how: Framing) -> Reply {
        if let Reply::Full { framing, .. } = &mut self {
            *framing = how;
        }
        self
    }
}

/// One request as the upstream saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    /// The whole head, lowercased.
    head: String,
}

/// A small HTTP/1.1 server on a loopback address answering each request with `route`.
/// Dropping it stops the listener and every connection it holds.
struct Upstream {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Upstream {
    async fn start(ip: &str, route: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> Upstream {
        let listener = TcpListener::bind((ip, 0)).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let route = Arc::new(route);
        let task = tokio::spawn(async move {
            let mut connections = JoinSet::new();
            while let Ok((conn, _)) = listener.accept().await {
                connections.spawn(serve(conn, record.clone(), route.clone()));
            }
        });
        Upstream { addr, seen, task }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn port(&self) -> u16 {
        self.addr.port()
    }

    fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve(
    mut conn: tokio::net::TcpStream,
    record: Arc<Mutex<Vec<Seen>>>,
    route: Arc<dyn Fn(&Seen) -> Reply + Send + Sync>,
) {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let text = String::from_utf8_lossy(&head).to_string();
    let mut first = text.lines().next().unwrap_or("").split(' ');
    let seen = Seen {
        method: first.next().unwrap_or("").to_string(),
        path: first.next().unwrap_or("").to_string(),
        head: text.to_ascii_lowercase(),
    };
    record.lock().unwrap().push(seen.clone());
    match route(&seen) {
        Reply::Stall => std::future::pending::<()>().await,
        Reply::StallBody => {
            let _ = conn
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
                .await;
            std::future::pending::<()>().await
        }
        Reply::Full {
            status,
            headers,
            body,
            framing,
        } => {
            let mut out = format!("HTTP/1.1 {status}\r\nConnection: close\r\n");
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            match framing {
                Framing::Length => out.push_str(&format!("Content-Length: {}\r\n", body.len())),
                Framing::Chunked => out.push_str("Transfer-Encoding: chunked\r\n"),
                Framing::Close => {}
            }
            out.push_str("\r\n");
            let mut bytes = out.into_bytes();
            match framing {
                Framing::Chunked => {
                    for chunk in body.chunks(512) {
                        bytes.extend(format!("{:x}\r\n", chunk.len()).bytes());
                        bytes.extend_from_slice(chunk);
                        bytes.extend(b"\r\n");
                    }
                    bytes.extend(b"0\r\n\r\n");
                }
                _ => bytes.extend(body),
            }
            let _ = conn.write_all(&bytes).await;
            let _ = conn.shutdown().await;
        }
    }
}

/// A server whose fetches may reach loopback (where the test's upstream runs).
async fn open_app() -> TestApp {
    open_app_with(|_| {}).await
}

async fn open_app_with(tweak: impl FnOnce(&mut flextype::config::Config)) -> TestApp {
    spawn_app_with(|c| {
        c.media.from_url.allow_private = true;
        tweak(c);
    })
    .await
}

async fn from_url(app: &TestApp, body: Value) -> Response {
    app.call(Method::POST, "/api/files/from-url", body).await
}

async fn fetched(app: &TestApp, body: Value) -> Value {
    let res = from_url(app, body.clone()).await;
    let status = res.status();
    let json: Value = res.json().await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body} → {json}");
    json["data"].clone()
}

/// Names of everything in the uploads tree but `.meta`/staging (what a failed call must not
/// leave), plus the server's temp files anywhere in the project.
fn stored(app: &TestApp) -> Vec<String> {
    let uploads = app.uploads();
    let mut found: Vec<String> = walkdir::WalkDir::new(&uploads)
        .min_depth(1)
        .into_iter()
        .filter_entry(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            e.path()
                .strip_prefix(&uploads)
                .unwrap()
                .display()
                .to_string()
        })
        .collect();
    found.extend(
        temp_files(&app.project)
            .into_iter()
            .map(|p| p.display().to_string()),
    );
    found
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fetched_file_lands_with_its_meta_hash_and_sniffed_type() {
    let bytes = jpeg(16, 9);
    let body = bytes.clone();
    let upstream = Upstream::start("127.0.0.1", move |_| {
        Reply::ok("application/octet-stream", &body)
    })
    .await;
    let app = open_app().await;
    let d = fetched(
        &app,
        json!({"url": upstream.url("/pics/cover.jpg?size=big"), "folder": "web"}),
    )
    .await;
    assert_eq!(d["path"], "web/cover.jpg");
    assert_eq!(d["type"], "image/jpeg", "sniffed, not the upstream's type");
    assert_eq!(d["hash"], blake3_hex(&bytes));
    assert_eq!(d["filesize"], bytes.len());
    assert_eq!(d["exif"]["Width"], 16);
    assert_eq!(d["title"], "Cover");
    assert_eq!(
        std::fs::read(app.file_path("web/cover.jpg")).unwrap(),
        bytes
    );
    let meta = std::fs::read_to_string(app.meta_path("web/cover.jpg")).unwrap();
    assert!(meta.contains(&blake3_hex(&bytes)), "{meta}");
    assert!(temp_files(&app.project).is_empty());
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "GET");
    assert_eq!(seen[0].path, "/pics/cover.jpg?size=big");
    // The same object as an upload's: fetchable by path.
    let res = app.fetch("web/cover.jpg").await;
    assert_eq!(
        res.json::<Value>().await.unwrap()["data"]["uuid"],
        d["uuid"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_name_field_names_the_file() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("image/png", &png(2, 2))).await;
    let app = open_app().await;
    let d = fetched(
        &app,
        json!({"url": upstream.url("/x/y.png"), "folder": "", "name": "My Photo.PNG"}),
    )
    .await;
    assert_eq!(d["filename"], "my-photo.png");
    assert!(app.file_path("my-photo.png").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_name_without_extension_gets_one_from_the_content_or_its_type() {
    let upstream = Upstream::start("127.0.0.1", |seen| match seen.path.as_str() {
        "/download/12345" => Reply::ok("application/octet-stream", &png(2, 2)),
        _ => Reply::ok("text/plain; charset=utf-8", b"just words"),
    })
    .await;
    let app = open_app().await;
    let d = fetched(
        &app,
        json!({"url": upstream.url("/download/12345"), "folder": ""}),
    )
    .await;
    assert_eq!(d["filename"], "12345.png", "from the magic bytes");
    let d = fetched(
        &app,
        json!({"url": upstream.url("/any"), "folder": "", "name": "notes"}),
    )
    .await;
    assert_eq!(d["filename"], "notes.txt", "from the Content-Type");
    assert_eq!(d["type"], "text/plain");
}

#[tokio::test(flavor = "multi_thread")]
async fn content_disposition_names_the_file_when_the_url_path_does_not() {
    let pdf = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n".to_vec();
    let upstream = Upstream::start("127.0.0.1", move |seen| match seen.path.as_str() {
        "/files/" => Reply::ok("application/pdf", &pdf).header(
            "Content-Disposition",
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''Quarterly%20Report.pdf",
        ),
        _ => Reply::ok("text/plain", b"plain"),
    })
    .await;
    let app = open_app().await;
    let d = fetched(&app, json!({"url": upstream.url("/files/"), "folder": ""})).await;
    assert_eq!(d["filename"], "quarterly-report.pdf");
    assert_eq!(d["type"], "application/pdf");
    let d = fetched(&app, json!({"url": upstream.url("/"), "folder": ""})).await;
    assert_eq!(
        d["filename"], "download.txt",
        "nothing names it: the fallback"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_final_url_after_redirects_names_the_file() {
    let upstream = Upstream::start("127.0.0.1", |seen| match seen.path.as_str() {
        "/go" => Reply::redirect("/real/photo.png"),
        _ => Reply::ok("image/png", &png(3, 3)),
    })
    .await;
    let app = open_app().await;
    let d = fetched(&app, json!({"url": upstream.url("/go"), "folder": "r"})).await;
    assert_eq!(d["path"], "r/photo.png");
    let paths: Vec<String> = upstream.requests().into_iter().map(|s| s.path).collect();
    assert_eq!(paths, ["/go", "/real/photo.png"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_taken_name_is_409_unless_overwrite_or_rename_is_asked() {
    let body = Arc::new(Mutex::new(b"first".to_vec()));
    let serving = body.clone();
    let upstream = Upstream::start("127.0.0.1", move |_| {
        Reply::ok("text/plain", &serving.lock().unwrap())
    })
    .await;
    let app = open_app().await;
    let url = upstream.url("/a.txt");
    let first = fetched(&app, json!({"url": url, "folder": ""})).await;
    *body.lock().unwrap() = b"second".to_vec();
    let res = from_url(&app, json!({"url": url, "folder": ""})).await;
    assert_error(res, StatusCode::CONFLICT, "file-exists").await;
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"first");
    assert!(temp_files(&app.project).is_empty());

    let d = fetched(&app, json!({"url": url, "folder": "", "rename": true})).await;
    assert_eq!(d["filename"], "a-1.txt");
    let d = fetched(&app, json!({"url": url, "folder": "", "overwrite": "true"})).await;
    assert_eq!(d["filename"], "a.txt");
    assert_eq!(d["uuid"], first["uuid"], "overwrite keeps the uuid");
    assert_eq!(std::fs::read(app.file_path("a.txt")).unwrap(), b"second");

    let before = upstream.requests().len();
    let res = from_url(
        &app,
        json!({"url": url, "folder": "", "overwrite": true, "rename": true}),
    )
    .await;
    assert_error(res, StatusCode::BAD_REQUEST, "invalid-parameter").await;
    assert_eq!(upstream.requests().len(), before, "refused before fetching");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_body_over_the_size_limit_is_413_and_nothing_is_stored() {
    let upstream = Upstream::start("127.0.0.1", |seen| {
        let reply = Reply::ok("text/plain", &[b'a'; 5000]);
        match seen.path.as_str() {
            "/length.txt" => reply,
            "/chunked.txt" => reply.framed(Framing::Chunked),
            "/close.txt" => reply.framed(Framing::Close),
            _ => Reply::ok("text/plain", &[b'a'; 1000]),
        }
    })
    .await;
    let app = open_app_with(|c| c.media.max_file_size = 1000).await;
    // Announced by Content-Length; and two ways of sending no length at all.
    for path in ["/length.txt", "/chunked.txt", "/close.txt"] {
        let res = from_url(&app, json!({"url": upstream.url(path), "folder": ""})).await;
        assert_error(res, StatusCode::PAYLOAD_TOO_LARGE, "file-too-large").await;
        assert_eq!(stored(&app), Vec::<String>::new(), "{path}");
    }
    fetched(
        &app,
        json!({"url": upstream.url("/exact.txt"), "folder": ""}),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upstream_error_status_is_502_and_nothing_is_stored() {
    let upstream = Upstream::start("127.0.0.1", |seen| match seen.path.as_str() {
        "/missing.jpg" => Reply::status("404 Not Found"),
        "/no-location" => Reply::status("302 Found"),
        _ => Reply::status("500 Internal Server Error"),
    })
    .await;
    let app = open_app().await;
    for path in ["/missing.jpg", "/broken.jpg", "/no-location"] {
        let res = from_url(&app, json!({"url": upstream.url(path), "folder": ""})).await;
        assert_error(res, StatusCode::BAD_GATEWAY, "upstream-status").await;
    }
    assert_eq!(stored(&app), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_upstream_is_502() {
    let app = open_app().await;
    // A port that was just free: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let res = from_url(
        &app,
        json!({"url": format!("http://127.0.0.1:{port}/a.txt"), "folder": ""}),
    )
    .await;
    assert_error(res, StatusCode::BAD_GATEWAY, "upstream-failed").await;
    // A name that does not resolve is the same 502; `remote::fetch`'s unit tests show it with
    // an injected resolver, as a real lookup would query the machine's DNS server.
}

#[tokio::test(flavor = "multi_thread")]
async fn content_that_contradicts_its_name_is_415_as_in_an_upload() {
    let upstream = Upstream::start("127.0.0.1", |seen| match seen.path.as_str() {
        "/evil.jpg" => Reply::ok(
            "image/jpeg",
            b"<!DOCTYPE html><html><script>alert(1)</script></html>",
        ),
        "/tool.exe" => Reply::ok("application/octet-stream", b"MZ\x90\0\x03\0\0\0"),
        _ => Reply::ok("image/png", &png(2, 2)),
    })
    .await;
    let app = open_app().await;
    let res = from_url(
        &app,
        json!({"url": upstream.url("/evil.jpg"), "folder": ""}),
    )
    .await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-mismatch").await;
    let res = from_url(
        &app,
        json!({"url": upstream.url("/tool.exe"), "folder": ""}),
    )
    .await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "type-not-accepted").await;
    let res = from_url(
        &app,
        json!({"url": upstream.url("/p.png"), "folder": "", "name": "fake.jpg"}),
    )
    .await;
    assert_error(res, StatusCode::UNSUPPORTED_MEDIA_TYPE, "content-mismatch").await;
    assert_eq!(stored(&app), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn redirects_are_followed_up_to_max_redirects_and_counted() {
    // /rN redirects to /r(N-1); /r0 is the file.
    let upstream = Upstream::start("127.0.0.1", |seen| {
        match seen.path.strip_prefix("/r").map(str::parse::<u32>) {
            Some(Ok(0)) => Reply::ok("text/plain", b"end"),
            Some(Ok(n)) => Reply::redirect(&format!("/r{}", n - 1)),
            _ => Reply::status("404 Not Found"),
        }
    })
    .await;
    let app = open_app_with(|c| c.media.from_url.max_redirects = 2).await;
    let d = fetched(
        &app,
        json!({"url": upstream.url("/r2"), "folder": "", "name": "two.txt"}),
    )
    .await;
    assert_eq!(d["filesize"], 3);
    let before = upstream.requests().len();
    let res = from_url(
        &app,
        json!({"url": upstream.url("/r3"), "folder": "", "name": "three.txt"}),
    )
    .await;
    assert_error(res, StatusCode::BAD_GATEWAY, "too-many-redirects").await;
    let paths: Vec<String> = upstream.requests()[before..]
        .iter()
        .map(|s| s.path.clone())
        .collect();
    assert_eq!(
        paths,
        ["/r3", "/r2", "/r1"],
        "the third redirect is not followed"
    );
    assert!(!app.file_path("three.txt").exists());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_upstream_times_out_with_502_and_nothing_is_stored() {
    let upstream = Upstream::start("127.0.0.1", |seen| match seen.path.as_str() {
        "/stall.txt" => Reply::Stall,
        _ => Reply::StallBody,
    })
    .await;
    let app = open_app_with(|c| c.media.from_url.timeout_s = 1).await;
    for path in ["/stall.txt", "/stall-body.txt"] {
        let res = from_url(&app, json!({"url": upstream.url(path), "folder": ""})).await;
        assert_error(res, StatusCode::BAD_GATEWAY, "upstream-timeout").await;
        assert_eq!(stored(&app), Vec::<String>::new(), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_from_a_url_can_be_turned_off() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"x")).await;
    let app = open_app_with(|c| c.media.from_url.enabled = false).await;
    let res = from_url(&app, json!({"url": upstream.url("/a.txt"), "folder": ""})).await;
    assert_error(res, StatusCode::FORBIDDEN, "from-url-disabled").await;
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn upload_from_a_url_needs_both_tokens_and_fetches_nothing_without_them() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"x")).await;
    let app = open_app().await;
    let res = app
        .client
        .post(app.url("/api/files/from-url"))
        .json(&json!({"url": upstream.url("/a.txt"), "folder": "", "token": app.files_token}))
        .send()
        .await
        .unwrap();
    assert_error(res, StatusCode::UNAUTHORIZED, "token-required").await;
    assert!(upstream.requests().is_empty());
    assert_eq!(stored(&app), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_are_400_and_fetch_nothing() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"x")).await;
    let app = open_app().await;
    let url = upstream.url("/a.txt");
    let cases = [
        (json!({"folder": ""}), "missing-parameter"),
        (json!({"url": url}), "missing-parameter"),
        (json!({"url": "not a url", "folder": ""}), "invalid-url"),
        (json!({"url": "http://", "folder": ""}), "invalid-url"),
        (json!({"url": url, "folder": "../up"}), "invalid-path"),
        (
            json!({"url": url, "folder": "", "method": "TRACE"}),
            "invalid-method",
        ),
        (
            json!({"url": url, "folder": "", "headers": ["x"]}),
            "invalid-header",
        ),
        (
            json!({"url": url, "folder": "", "headers": {"X-N": 5}}),
            "invalid-header",
        ),
        (
            json!({"url": url, "folder": "", "headers": {"Host": "evil"}}),
            "header-not-allowed",
        ),
        (
            json!({"url": url, "folder": "", "headers": {"Transfer-Encoding": "chunked"}}),
            "header-not-allowed",
        ),
    ];
    for (body, code) in cases {
        let res = from_url(&app, body.clone()).await;
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{body}");
        assert_error(res, StatusCode::BAD_REQUEST, code).await;
    }
    assert!(upstream.requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn caller_headers_and_method_reach_the_upstream_and_never_appear_in_errors() {
    let upstream = Upstream::start("127.0.0.1", |seen| {
        if !seen.head.contains("authorization: bearer s3cret-token") {
            Reply::status("401 Unauthorized")
        } else if seen.path == "/gone.txt" {
            Reply::status("410 Gone")
        } else {
            Reply::ok("text/plain", b"private")
        }
    })
    .await;
    let app = open_app().await;
    let headers = json!({"Authorization": "Bearer s3cret-token", "X-Trace": "t-1"});
    let d = fetched(
        &app,
        json!({"url": upstream.url("/p.txt"), "folder": "", "method": "post", "headers": headers}),
    )
    .await;
    assert_eq!(d["filesize"], 7);
    let seen = &upstream.requests()[0];
    assert_eq!(seen.method, "POST");
    assert!(seen.head.contains("x-trace: t-1"));

    let res = from_url(
        &app,
        json!({"url": upstream.url("/gone.txt"), "folder": "", "headers": headers}),
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(text.contains("upstream-status"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
    let res = from_url(
        &app,
        json!({"url": upstream.url("/x.txt"), "folder": "", "headers": {"X-Key": "s3cret\nX: y"}}),
    )
    .await;
    let text = res.text().await.unwrap();
    assert!(text.contains("invalid-header"), "{text}");
    assert!(!text.contains("s3cret"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_form_body_works_with_headers_as_bracketed_fields() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"form")).await;
    let app = open_app().await;
    let res = app
        .client
        .post(app.url("/api/files/from-url"))
        .form(&[
            ("token", app.files_token.as_str()),
            ("access_token", app.access_token.as_str()),
            ("url", &upstream.url("/f.txt")),
            ("folder", "forms"),
            ("headers[X-Api-Key]", "k-1"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(app.file_path("forms/f.txt").exists());
    assert!(upstream.requests()[0].head.contains("x-api-key: k-1"));
}

/// With the default config, every URL that names this machine, a private network or another
/// scheme is refused with 400 before anything is fetched: the upstream (on 127.0.0.1, and
/// the port named in every URL) sees no request at all. The URLs that point elsewhere
/// (169.254.169.254, 10.0.0.1, …) are refused before any connection is tried.
#[tokio::test(flavor = "multi_thread")]
async fn the_default_config_refuses_every_private_and_non_http_url() {
    let upstream = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"secret")).await;
    let app = spawn_app().await;
    let p = upstream.port();
    let urls = [
        format!("http://127.0.0.1:{p}/a.txt"),
        format!("http://localhost:{p}/a.txt"),
        format!("http://[::1]:{p}/a.txt"),
        format!("http://[::ffff:127.0.0.1]:{p}/a.txt"),
        format!("http://[::ffff:7f00:1]:{p}/a.txt"),
        format!("http://[64:ff9b::7f00:1]:{p}/a.txt"),
        format!("http://2130706433:{p}/a.txt"),
        format!("http://0x7f.0.0.1:{p}/a.txt"),
        format!("http://0x7f.1:{p}/a.txt"),
        format!("http://0177.0.0.1:{p}/a.txt"),
        format!("http://127.1:{p}/a.txt"),
        format!("http://127.0.0.1.:{p}/a.txt"),
        format!("http://0.0.0.0:{p}/a.txt"),
        format!("http://[::]:{p}/a.txt"),
        format!("http://169.254.169.254:{p}/latest/meta-data/"),
        format!("http://10.0.0.1:{p}/a.txt"),
        format!("http://172.16.0.1:{p}/a.txt"),
        format!("http://192.168.1.1:{p}/a.txt"),
        format!("http://100.64.0.1:{p}/a.txt"),
        format!("http://[fe80::1]:{p}/a.txt"),
        format!("http://[fc00::1]:{p}/a.txt"),
        format!("http://user:pw@127.0.0.1:{p}/a.txt"),
        "file:///etc/passwd".to_string(),
        format!("ftp://127.0.0.1:{p}/a.txt"),
        format!("gopher://127.0.0.1:{p}/_GET%20/a.txt"),
    ];
    for url in &urls {
        let res = from_url(&app, json!({"url": url, "folder": ""})).await;
        let got = res.status();
        let body: Value = res.json().await.unwrap();
        assert_eq!(got, StatusCode::BAD_REQUEST, "{url}: {body}");
        assert_eq!(body["code"], "url-not-allowed", "{url}: {body}");
    }
    assert!(upstream.requests().is_empty(), "{:?}", upstream.requests());
    assert_eq!(stored(&app), Vec::<String>::new());
}

/// A redirect from an allowed host to a refused address is refused (400) and not followed.
///
/// The allowed first hop must be a real server, and this machine has only loopback to offer
/// one on; so the test names exactly `127.0.0.1` in `media.from_url.allowed_addresses` (a
/// production setting for allowing chosen internal hosts) and keeps `allow_private` off.
/// Every other loopback address stays refused, so the redirect to `127.0.0.2`, where a
/// second server listens, or to `[::1]`, stands for a public host redirecting inwards. The
/// inner server seeing no request proves the refused hop was never contacted. Redirects to
/// names that resolve to refused addresses are covered by `remote::fetch`'s unit tests, which
/// inject a resolver.
#[tokio::test(flavor = "multi_thread")]
async fn a_redirect_from_an_allowed_host_to_a_refused_address_is_400_and_not_followed() {
    let inner = Upstream::start("127.0.0.2", |_| Reply::ok("text/plain", b"secret")).await;
    let inner_url = inner.url("/secret.txt");
    let inner_port = inner.port();
    let outer = Upstream::start("127.0.0.1", move |seen| match seen.path.as_str() {
        "/to-inner" => Reply::redirect(&inner_url),
        "/to-v6-loopback" => Reply::redirect(&format!("http://[::1]:{inner_port}/secret.txt")),
        "/to-file" => Reply::redirect("file:///etc/passwd"),
        _ => Reply::ok("text/plain", b"public"),
    })
    .await;
    let app = spawn_app_with(|c| {
        c.media.from_url.allowed_addresses = vec!["127.0.0.1".parse().unwrap()];
    })
    .await;
    fetched(&app, json!({"url": outer.url("/plain.txt"), "folder": ""})).await;
    for path in ["/to-inner", "/to-v6-loopback", "/to-file"] {
        let res = from_url(&app, json!({"url": outer.url(path), "folder": ""})).await;
        assert_error(res, StatusCode::BAD_REQUEST, "url-not-allowed").await;
    }
    assert_eq!(outer.requests().len(), 4);
    assert!(inner.requests().is_empty(), "the refused hop was contacted");
    let res = from_url(&app, json!({"url": inner.url("/secret.txt"), "folder": ""})).await;
    assert_error(res, StatusCode::BAD_REQUEST, "url-not-allowed").await;
    assert!(inner.requests().is_empty());
    assert_eq!(stored(&app), vec!["plain.txt".to_string()]);
}

#[tokio::test(flavor = "multi_thread")]
async fn caller_headers_are_not_sent_on_to_another_origin() {
    let other = Upstream::start("127.0.0.1", |_| Reply::ok("text/plain", b"other")).await;
    let target = other.url("/o.txt");
    let first = Upstream::start("127.0.0.1", move |seen| match seen.path.as_str() {
        "/start" => Reply::redirect("/same"),
        _ => Reply::redirect(&target),
    })
    .await;
    let app = open_app().await;
    fetched(
        &app,
        json!({"url": first.url("/start"), "folder": "", "headers": {"X-Api-Key": "k3y"}}),
    )
    .await;
    assert!(first
        .requests()
        .iter()
        .all(|s| s.head.contains("x-api-key: k3y")));
    assert!(!other.requests()[0].head.contains("k3y"));
}
