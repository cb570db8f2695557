//! Serving content: `GET|HEAD /project/uploads/<path>` and `GET|HEAD /media/<hash>[.<ext>]` —
//! validators, conditional requests, ranges, downloads, sandboxing, and freshness of the
//! in-memory cache. Where the two ways of sending bytes differ (small files from memory, large
//! ones streamed from disk), each check runs over both.

use std::time::{Duration, SystemTime};

use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;

use crate::helpers::*;

/// Served from the in-memory cache (default `server.hot_file_max_bytes` is 256 KiB).
const SMALL: usize = 1000;
/// Streamed from disk, and larger than one 512 KiB read chunk.
const LARGE: usize = 600 * 1024;
const NO_CACHE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";

/// Printable text whose every offset is distinguishable enough to catch off-by-one slicing.
fn text_bytes(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if i % 64 == 63 {
                b'\n'
            } else {
                b'a' + ((i * 7 + i / 13 + i / 251) % 26) as u8
            }
        })
        .collect()
}

/// One small (memory) and one large (disk) text file, uploaded under `serve/`.
async fn both_sizes(app: &TestApp) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, len) in [("small.txt", SMALL), ("large.txt", LARGE)] {
        let bytes = text_bytes(len);
        app.uploaded("serve", name, &bytes).await;
        out.push((format!("serve/{name}"), bytes));
    }
    out
}

fn uploads_url(app: &TestApp, rel: &str) -> String {
    let encoded: Vec<String> = rel
        .split('/')
        .map(|s| utf8_percent_encode(s, NON_ALPHANUMERIC).to_string())
        .collect();
    app.url(&format!("/project/uploads/{}", encoded.join("/")))
}

async fn send(app: &TestApp, method: Method, url: &str, headers: &[(&str, &str)]) -> Response {
    let mut req = app.client.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn get(app: &TestApp, url: &str, headers: &[(&str, &str)]) -> Response {
    send(app, Method::GET, url, headers).await
}

fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name).map(|v| v.to_str().unwrap().to_string())
}

fn must_header(h: &HeaderMap, name: &str) -> String {
    header(h, name).unwrap_or_else(|| panic!("missing header {name}; headers: {h:?}"))
}

fn etag_of(bytes: &[u8]) -> String {
    format!("\"{}\"", blake3_hex(bytes))
}

/// GETs a URL and returns its status, headers and body.
async fn get_all(
    app: &TestApp,
    url: &str,
    headers: &[(&str, &str)],
) -> (StatusCode, HeaderMap, Vec<u8>) {
    let res = get(app, url, headers).await;
    let status = res.status();
    let h = res.headers().clone();
    let body = res.bytes().await.unwrap().to_vec();
    (status, h, body)
}

/// The Last-Modified a file must carry: its mtime in whole seconds.
fn last_modified_of(app: &TestApp, rel: &str) -> String {
    let mtime = std::fs::metadata(app.file_path(rel))
        .unwrap()
        .modified()
        .unwrap();
    httpdate::fmt_http_date(mtime)
}

/// Asserts a JSON error body whose status is one of `allowed`, and that it leaks nothing.
async fn assert_refused(res: Response, allowed: &[StatusCode], secret: &[u8], what: &str) {
    let status = res.status();
    let ctype = header(res.headers(), "content-type").unwrap_or_default();
    let body = res.bytes().await.unwrap();
    assert!(
        allowed.contains(&status),
        "{what}: status {status}, body {:?}",
        String::from_utf8_lossy(&body)
    );
    assert!(
        ctype.starts_with("application/json"),
        "{what}: error body must be JSON, got {ctype}"
    );
    let json: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|_| panic!("{what}: body is not JSON: {body:?}"));
    assert_eq!(json["http_status_code"], status.as_u16(), "{what}: {json}");
    assert!(
        json["code"].as_str().is_some_and(|c| !c.is_empty()),
        "{json}"
    );
    if !secret.is_empty() {
        assert!(
            !body.windows(secret.len()).any(|w| w == secret),
            "{what}: the response leaks the hidden content"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Full responses

#[tokio::test(flavor = "multi_thread")]
async fn get_returns_exact_bytes_with_validators_and_caching_headers() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        // Twice: the first answer fills the in-memory cache, the second comes from it.
        for round in 0..2 {
            let (status, h, body) = get_all(&app, &uploads_url(&app, &rel), &[]).await;
            assert_eq!(status, StatusCode::OK, "{rel} round {round}");
            assert!(body == bytes, "{rel} round {round}: body differs");
            assert_eq!(must_header(&h, "etag"), etag_of(&bytes), "{rel}");
            assert_eq!(
                must_header(&h, "last-modified"),
                last_modified_of(&app, &rel),
                "{rel}"
            );
            assert_eq!(must_header(&h, "cache-control"), NO_CACHE, "{rel}");
            assert_eq!(must_header(&h, "x-content-type-options"), "nosniff");
            assert!(
                must_header(&h, "content-type").starts_with("text/plain"),
                "{rel}: {h:?}"
            );
            assert_eq!(must_header(&h, "accept-ranges"), "bytes", "{rel}");
            assert_eq!(
                must_header(&h, "content-length"),
                bytes.len().to_string(),
                "{rel}"
            );
            assert!(
                header(&h, "content-security-policy").is_none(),
                "plain text is not sandboxed"
            );
            assert!(
                header(&h, "content-disposition").is_none(),
                "inline by default"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn png_is_served_as_image_png_and_not_sandboxed() {
    let app = spawn_app().await;
    let bytes = png(20, 10);
    app.uploaded("img", "dot.png", &bytes).await;
    for _ in 0..2 {
        let (status, h, body) = get_all(&app, &app.url("/project/uploads/img/dot.png"), &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body, bytes);
        assert_eq!(must_header(&h, "content-type"), "image/png");
        assert_eq!(must_header(&h, "etag"), etag_of(&bytes));
        assert!(header(&h, "content-security-policy").is_none());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn head_sends_the_same_headers_and_no_body() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let (_, get_h, _) = get_all(&app, &url, &[]).await;
        for round in 0..2 {
            let res = send(&app, Method::HEAD, &url, &[]).await;
            assert_eq!(res.status(), StatusCode::OK, "{rel} round {round}");
            let h = res.headers().clone();
            assert_eq!(
                must_header(&h, "content-length"),
                bytes.len().to_string(),
                "{rel}: HEAD announces the file size"
            );
            for name in [
                "etag",
                "last-modified",
                "cache-control",
                "content-type",
                "x-content-type-options",
                "accept-ranges",
            ] {
                assert_eq!(header(&h, name), header(&get_h, name), "{rel}: {name}");
            }
            assert!(
                res.bytes().await.unwrap().is_empty(),
                "{rel}: HEAD has no body"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Conditional requests

#[tokio::test(flavor = "multi_thread")]
async fn if_none_match_with_the_etag_returns_304_in_strong_weak_and_list_forms() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let etag = etag_of(&bytes);
        get_all(&app, &url, &[]).await;
        for inm in [
            etag.clone(),
            format!("W/{etag}"),
            format!("\"nope\", {etag}"),
            format!("\"nope\",W/{etag} , \"other\""),
            "*".to_string(),
        ] {
            let (status, h, body) = get_all(&app, &url, &[("if-none-match", &inm)]).await;
            assert_eq!(
                status,
                StatusCode::NOT_MODIFIED,
                "{rel} If-None-Match: {inm}"
            );
            assert!(body.is_empty(), "{rel}: 304 has no body");
            assert_eq!(must_header(&h, "etag"), etag, "{rel}: 304 repeats the ETag");
            assert_eq!(must_header(&h, "cache-control"), NO_CACHE);
        }
        let res = send(&app, Method::HEAD, &url, &[("if-none-match", &etag)]).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED, "{rel} HEAD");
        for inm in ["\"nope\"", "W/\"nope\", \"other\""] {
            let (status, _, body) = get_all(&app, &url, &[("if-none-match", inm)]).await;
            assert_eq!(status, StatusCode::OK, "{rel} If-None-Match: {inm}");
            assert!(body == bytes, "{rel}: full body");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_modified_since_at_or_after_last_modified_returns_304() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let (_, h, _) = get_all(&app, &url, &[]).await;
        let lm = must_header(&h, "last-modified");
        let lm_time = httpdate::parse_http_date(&lm).unwrap();
        let later = httpdate::fmt_http_date(lm_time + Duration::from_secs(3600));
        let earlier = httpdate::fmt_http_date(lm_time - Duration::from_secs(3600));
        for ims in [&lm, &later] {
            let (status, h, body) = get_all(&app, &url, &[("if-modified-since", ims)]).await;
            assert_eq!(
                status,
                StatusCode::NOT_MODIFIED,
                "{rel} If-Modified-Since: {ims}"
            );
            assert!(body.is_empty());
            assert_eq!(must_header(&h, "etag"), etag_of(&bytes));
        }
        let (status, _, body) = get_all(&app, &url, &[("if-modified-since", &earlier)]).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{rel}: modified since an hour before"
        );
        assert!(body == bytes);
        // If-None-Match wins over If-Modified-Since (RFC 9110 §13.1.3).
        let (status, _, _) = get_all(
            &app,
            &url,
            &[("if-none-match", "\"nope\""), ("if-modified-since", &later)],
        )
        .await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{rel}: If-Modified-Since is ignored"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_match_mismatch_returns_412_and_a_match_returns_the_file() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let etag = etag_of(&bytes);
        get_all(&app, &url, &[]).await;
        for im in ["\"nope\"", "\"nope\", \"other\""] {
            let (status, _, body) = get_all(&app, &url, &[("if-match", im)]).await;
            assert_eq!(
                status,
                StatusCode::PRECONDITION_FAILED,
                "{rel} If-Match: {im}"
            );
            assert!(!body.starts_with(&bytes[..32]), "{rel}: no content on 412");
            let json: serde_json::Value = serde_json::from_slice(&body).expect("a JSON error body");
            assert_eq!(json["code"], "precondition-failed");
        }
        for im in [etag.clone(), format!("\"nope\", {etag}"), "*".to_string()] {
            let (status, _, body) = get_all(&app, &url, &[("if-match", &im)]).await;
            assert_eq!(status, StatusCode::OK, "{rel} If-Match: {im}");
            assert!(body == bytes);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Ranges

#[tokio::test(flavor = "multi_thread")]
async fn range_request_returns_206_with_content_range() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let len = bytes.len();
        get_all(&app, &url, &[]).await;
        let cases: Vec<(String, usize, usize)> = vec![
            ("bytes=0-9".into(), 0, 9),
            ("bytes=-5".into(), len - 5, len - 1),
            ("bytes=10-".into(), 10, len - 1),
            (format!("bytes=100-{}", len - 100), 100, len - 100),
            // Past the end is clipped to the last byte.
            (format!("bytes={}-{}", len - 3, len + 50), len - 3, len - 1),
        ];
        for (range, first, last) in cases {
            let (status, h, body) = get_all(&app, &url, &[("range", &range)]).await;
            assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{rel} {range}");
            assert_eq!(
                must_header(&h, "content-range"),
                format!("bytes {first}-{last}/{len}"),
                "{rel} {range}"
            );
            assert_eq!(
                must_header(&h, "content-length"),
                (last - first + 1).to_string(),
                "{rel} {range}"
            );
            assert!(body == bytes[first..=last], "{rel} {range}: wrong bytes");
            assert_eq!(must_header(&h, "etag"), etag_of(&bytes));
            assert!(must_header(&h, "content-type").starts_with("text/plain"));
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multiple_ranges_return_206_multipart_byteranges_with_every_part() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        let len = bytes.len();
        get_all(&app, &url, &[]).await;
        let (status, h, body) = get_all(&app, &url, &[("range", "bytes=0-9,20-29,-4")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{rel}");
        let ctype = must_header(&h, "content-type");
        let boundary = ctype
            .strip_prefix("multipart/byteranges; boundary=")
            .unwrap_or_else(|| panic!("{rel}: content-type {ctype}"))
            .trim_matches('"')
            .to_string();
        assert!(!boundary.is_empty());
        assert!(
            header(&h, "content-range").is_none(),
            "ranges are in the parts"
        );
        assert_eq!(must_header(&h, "content-length"), body.len().to_string());
        let mut rest: &[u8] = &body;
        for (first, last) in [(0, 9), (20, 29), (len - 4, len - 1)] {
            let delimiter = format!("--{boundary}\r\n");
            let at = find(rest, delimiter.as_bytes())
                .unwrap_or_else(|| panic!("{rel}: part {first}-{last} missing"));
            rest = &rest[at + delimiter.len()..];
            let head_end = find(rest, b"\r\n\r\n").expect("part headers end");
            let head = String::from_utf8_lossy(&rest[..head_end]).to_ascii_lowercase();
            assert!(
                head.contains(&format!("content-range: bytes {first}-{last}/{len}")),
                "{rel}: part head {head:?}"
            );
            assert!(head.contains("content-type: text/plain"), "{head:?}");
            rest = &rest[head_end + 4..];
            assert!(
                rest.starts_with(&bytes[first..=last]),
                "{rel}: part {first}-{last} has wrong bytes"
            );
            rest = &rest[last - first + 1..];
        }
        let close = format!("--{boundary}--");
        assert!(
            find(rest, close.as_bytes()).is_some(),
            "{rel}: closing delimiter"
        );
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[tokio::test(flavor = "multi_thread")]
async fn unsatisfiable_range_returns_416_with_content_range_and_json_error() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        get_all(&app, &url, &[]).await;
        for range in [
            "bytes=999999-".to_string(),
            format!("bytes={}-", bytes.len()),
        ] {
            let res = get(&app, &url, &[("range", &range)]).await;
            assert_eq!(
                header(res.headers(), "content-range").as_deref(),
                Some(format!("bytes */{}", bytes.len()).as_str()),
                "{rel} {range}"
            );
            assert_error(
                res,
                StatusCode::RANGE_NOT_SATISFIABLE,
                "range-not-satisfiable",
            )
            .await;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn range_in_another_unit_malformed_or_overlapping_gets_the_whole_file() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        for range in ["items=0-5", "bytes=abc", "bytes=5-4", "bytes=0-,0-,0-"] {
            let (status, h, body) = get_all(&app, &url, &[("range", range)]).await;
            assert_eq!(status, StatusCode::OK, "{rel} {range}");
            assert!(h.get("content-range").is_none(), "{rel} {range}");
            assert!(body == bytes, "{rel} {range}: the whole file");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn if_range_with_a_stale_etag_returns_the_full_body() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let url = uploads_url(&app, &rel);
        get_all(&app, &url, &[]).await;
        let stale = format!("\"{}\"", blake3_hex(b"an older version"));
        let (status, h, body) =
            get_all(&app, &url, &[("range", "bytes=0-9"), ("if-range", &stale)]).await;
        assert_eq!(status, StatusCode::OK, "{rel}");
        assert!(header(&h, "content-range").is_none());
        assert!(body == bytes, "{rel}: whole file");
        let (status, _, body) = get_all(
            &app,
            &url,
            &[("range", "bytes=0-9"), ("if-range", &etag_of(&bytes))],
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{rel}: current ETag");
        assert_eq!(body, bytes[..10]);
    }
}

// ---------------------------------------------------------------------------------------------
// Downloads and active content

/// Checks an attachment header and returns the name its `filename*` decodes to.
fn attachment_name(value: &str) -> String {
    assert!(value.starts_with("attachment"), "{value}");
    // The plain fallback: a quoted ASCII string that ends where it should.
    let start = value.find("filename=\"").expect("filename fallback") + "filename=\"".len();
    let mut end = None;
    let mut escaped = false;
    for (i, c) in value[start..].char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '"' => {
                end = Some(start + i);
                break;
            }
            _ => {}
        }
    }
    let end = end.expect("fallback quoted string is closed");
    assert!(value[start..end].is_ascii(), "{value}");
    let after = value[end + 1..].trim_start();
    assert!(
        after.is_empty() || after.starts_with(';'),
        "fallback name breaks the header: {value}"
    );
    let ext = value
        .split("filename*=")
        .nth(1)
        .expect("filename* parameter")
        .split(';')
        .next()
        .unwrap()
        .trim();
    let encoded = ext
        .strip_prefix("UTF-8''")
        .or_else(|| ext.strip_prefix("utf-8''"))
        .unwrap_or_else(|| panic!("filename* must be UTF-8'': {value}"));
    // RFC 8187 attr-char or pct-encoded only.
    assert!(
        encoded
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$&+-.^_`|~%".contains(c)),
        "filename* is not percent-encoded: {value}"
    );
    percent_decode_str(encoded)
        .decode_utf8()
        .unwrap()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn download_param_sends_an_attachment_with_an_encoded_unicode_name() {
    let app = spawn_app_with(|c| c.media.safe_names = false).await;
    let files = [
        ("Été à Paris.txt", text_bytes(SMALL)),
        ("Grand café №5 🎉.txt", text_bytes(LARGE)),
        ("it's \"quoted\" & <more>.txt", text_bytes(SMALL + 1)),
    ];
    for (name, bytes) in &files {
        let d = app.uploaded("dl", name, bytes).await;
        assert_eq!(d["filename"], *name, "stored under its exact name");
        let url = uploads_url(&app, &format!("dl/{name}"));
        for flag in ["1", "t", "true"] {
            let (status, h, body) = get_all(&app, &format!("{url}?download={flag}"), &[]).await;
            assert_eq!(status, StatusCode::OK, "{name} download={flag}");
            assert!(body == *bytes, "{name}: same bytes as a download");
            let cd = must_header(&h, "content-disposition");
            assert_eq!(attachment_name(&cd), *name, "{name}: {cd}");
        }
        for other in ["", "?download=0", "?download=false", "?downloads=1"] {
            let (status, h, _) = get_all(&app, &format!("{url}{other}"), &[]).await;
            assert_eq!(status, StatusCode::OK);
            assert!(
                header(&h, "content-disposition").is_none(),
                "{name}{other}: inline"
            );
        }
    }
    // The exact encoding of a known name.
    let (_, h, _) = get_all(
        &app,
        &format!("{}?download=1", uploads_url(&app, "dl/Été à Paris.txt")),
        &[],
    )
    .await;
    let cd = must_header(&h, "content-disposition").to_ascii_uppercase();
    assert!(
        cd.contains("FILENAME*=UTF-8''%C3%89T%C3%A9%20%C3%A0%20PARIS"),
        "{cd}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn download_of_a_file_put_on_disk_keeps_its_unicode_name() {
    let app = spawn_app().await;
    let name = "Ünïcödé naïve résumé.txt";
    app.put_file(&format!("hand/{name}"), b"dropped");
    let (status, h, body) = get_all(
        &app,
        &format!(
            "{}?download=true",
            uploads_url(&app, &format!("hand/{name}"))
        ),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, b"dropped");
    assert_eq!(
        attachment_name(&must_header(&h, "content-disposition")),
        name
    );
}

const SVG: &[u8] = br#"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(document.cookie)</script><rect width="10" height="10"/></svg>"#;

fn large_svg() -> Vec<u8> {
    let mut v = SVG[..SVG.len() - "</svg>".len()].to_vec();
    v.extend_from_slice(b"<!--");
    v.extend(text_bytes(LARGE));
    v.extend_from_slice(b"--></svg>");
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn active_content_is_served_with_a_sandbox_policy() {
    let app = spawn_app().await;
    app.put_file("act/hand.svg", SVG);
    app.put_file("act/big.svg", &large_svg());
    app.put_file(
        "act/page.html",
        b"<!DOCTYPE html><html><script>alert(1)</script></html>",
    );
    app.put_file("act/app.js", b"alert(document.cookie)");
    let up = app.uploaded("act", "uploaded.svg", SVG).await;
    assert_eq!(up["filename"], "uploaded.svg");
    for rel in [
        "act/hand.svg",
        "act/big.svg",
        "act/page.html",
        "act/app.js",
        "act/uploaded.svg",
    ] {
        for round in 0..2 {
            let (status, h, body) = get_all(&app, &uploads_url(&app, rel), &[]).await;
            assert_eq!(status, StatusCode::OK, "{rel}");
            assert_eq!(body, std::fs::read(app.file_path(rel)).unwrap(), "{rel}");
            let sandboxed = header(&h, "content-security-policy")
                .is_some_and(|v| v.split(';').any(|d| d.trim() == "sandbox"));
            let attachment =
                header(&h, "content-disposition").is_some_and(|v| v.starts_with("attachment"));
            assert!(
                sandboxed || attachment,
                "{rel} round {round}: active content must be sandboxed: {h:?}"
            );
            assert_eq!(must_header(&h, "x-content-type-options"), "nosniff");
        }
    }
    let (_, h, _) = get_all(&app, &uploads_url(&app, "act/hand.svg"), &[]).await;
    assert_eq!(must_header(&h, "content-type"), "image/svg+xml");
    assert_eq!(must_header(&h, "content-security-policy"), "sandbox");
}

// ---------------------------------------------------------------------------------------------
// Freshness: changes made on disk

async fn assert_serves(app: &TestApp, rel: &str, bytes: &[u8], what: &str) {
    let (status, h, body) = get_all(app, &uploads_url(app, rel), &[]).await;
    assert_eq!(status, StatusCode::OK, "{what}");
    assert!(body == bytes, "{what}: stale or wrong bytes served");
    assert_eq!(must_header(&h, "etag"), etag_of(bytes), "{what}: ETag");
    assert_eq!(
        must_header(&h, "content-length"),
        bytes.len().to_string(),
        "{what}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn file_changed_on_disk_is_served_fresh_with_a_new_etag() {
    let app = spawn_app().await;
    for (rel, v1) in both_sizes(&app).await {
        assert_serves(&app, &rel, &v1, &format!("{rel} v1")).await;
        assert_serves(&app, &rel, &v1, &format!("{rel} v1 again")).await;

        // A different length.
        let mut v2 = v1.clone();
        v2.extend_from_slice(b"appended line\n");
        app.put_file(&rel, &v2);
        assert_serves(&app, &rel, &v2, &format!("{rel} v2 (longer)")).await;
        assert_serves(&app, &rel, &v2, &format!("{rel} v2 again")).await;

        // The same length, other bytes.
        let mut v3 = v2.clone();
        v3[0] = b'Z';
        let last = v3.len() - 2;
        v3[last] = b'Q';
        app.put_file(&rel, &v3);
        assert_serves(&app, &rel, &v3, &format!("{rel} v3 (same length)")).await;

        // A client holding an old ETag gets the new content, not a 304.
        for old in [&v1, &v2] {
            let (status, h, body) = get_all(
                &app,
                &uploads_url(&app, &rel),
                &[("if-none-match", &etag_of(old))],
            )
            .await;
            assert_eq!(status, StatusCode::OK, "{rel}: old ETag must not match");
            assert!(body == v3);
            assert_eq!(must_header(&h, "etag"), etag_of(&v3));
        }
        // Ranges see the new bytes too.
        let (status, _, body) =
            get_all(&app, &uploads_url(&app, &rel), &[("range", "bytes=0-3")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, v3[..4], "{rel}: range of the new content");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_changed_on_disk_after_being_served_by_hash_is_fresh_by_path_and_hash() {
    let app = spawn_app().await;
    for (rel, v1) in both_sizes(&app).await {
        let old_media = app.url(&format!("/media/{}.txt", blake3_hex(&v1)));
        let (status, _, body) = get_all(&app, &old_media, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == v1);
        let mut v2 = v1.clone();
        v2[5] ^= 0x20;
        app.put_file(&rel, &v2);
        // The old hash names content that no longer exists anywhere.
        let res = get(&app, &old_media, &[]).await;
        assert_error(res, StatusCode::NOT_FOUND, "hash-not-found").await;
        assert_serves(&app, &rel, &v2, &format!("{rel} after change")).await;
        let (status, h, body) = get_all(
            &app,
            &app.url(&format!("/media/{}.txt", blake3_hex(&v2))),
            &[],
        )
        .await;
        assert_eq!(status, StatusCode::OK, "{rel}: new hash resolves");
        assert!(body == v2);
        assert_eq!(must_header(&h, "etag"), etag_of(&v2));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_dropped_on_disk_by_hand_is_served_and_gets_a_meta_file() {
    let app = spawn_app().await;
    let files = [
        ("dropped/hand.txt", text_bytes(SMALL)),
        ("dropped/big.txt", text_bytes(LARGE)),
    ];
    for (rel, bytes) in &files {
        app.put_file(rel, bytes);
        assert!(
            !app.meta_path(rel).exists(),
            "no meta before the first request"
        );
        assert_serves(&app, rel, bytes, rel).await;
        let meta: serde_yaml::Value =
            serde_yaml::from_str(&std::fs::read_to_string(app.meta_path(rel)).unwrap()).unwrap();
        assert_eq!(
            meta["hash"].as_str(),
            Some(blake3_hex(bytes).as_str()),
            "{rel}"
        );
        assert_eq!(meta["filesize"].as_u64(), Some(bytes.len() as u64), "{rel}");
        assert!(meta["uuid"].as_str().is_some(), "{rel}");
        assert_serves(&app, rel, bytes, rel).await;
    }
    assert!(temp_files(&app.project).is_empty());
}

// ---------------------------------------------------------------------------------------------
// By hash

#[tokio::test(flavor = "multi_thread")]
async fn hash_url_of_the_file_object_resolves_to_the_same_bytes_and_is_immutable() {
    let app = spawn_app().await;
    let bytes = png(8, 8);
    let d = app.uploaded("h", "pic.png", &bytes).await;
    let hash = blake3_hex(&bytes);
    let hash_url = d["hash_url"].as_str().unwrap().to_string();
    assert_eq!(hash_url, app.url(&format!("/media/{hash}.png")));
    for url in [hash_url.clone(), app.url(&format!("/media/{hash}"))] {
        for round in 0..2 {
            let (status, h, body) = get_all(&app, &url, &[]).await;
            assert_eq!(status, StatusCode::OK, "{url} round {round}");
            assert_eq!(body, bytes, "{url}");
            assert_eq!(must_header(&h, "cache-control"), IMMUTABLE, "{url}");
            assert_eq!(must_header(&h, "etag"), etag_of(&bytes), "{url}");
            assert_eq!(must_header(&h, "content-type"), "image/png", "{url}");
            assert_eq!(must_header(&h, "x-content-type-options"), "nosniff");
            assert_eq!(must_header(&h, "accept-ranges"), "bytes");
            assert!(header(&h, "last-modified").is_some());
        }
        let res = send(&app, Method::HEAD, &url, &[]).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(
            must_header(res.headers(), "content-length"),
            bytes.len().to_string()
        );
        assert_eq!(must_header(res.headers(), "cache-control"), IMMUTABLE);
        assert!(res.bytes().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn media_url_serves_large_files_from_disk_with_ranges_and_304() {
    let app = spawn_app().await;
    for (_, bytes) in both_sizes(&app).await {
        let hash = blake3_hex(&bytes);
        let url = app.url(&format!("/media/{hash}.txt"));
        let len = bytes.len();
        let (status, h, body) = get_all(&app, &url, &[]).await;
        assert_eq!(status, StatusCode::OK);
        assert!(body == bytes, "{len} bytes by hash");
        assert_eq!(must_header(&h, "cache-control"), IMMUTABLE);

        let (status, h, body) = get_all(&app, &url, &[("range", "bytes=0-9")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(must_header(&h, "content-range"), format!("bytes 0-9/{len}"));
        assert_eq!(body, bytes[..10]);
        let (status, _, body) = get_all(&app, &url, &[("range", "bytes=-5")]).await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(body, bytes[len - 5..]);
        let res = get(&app, &url, &[("range", "bytes=999999-")]).await;
        assert_eq!(
            header(res.headers(), "content-range"),
            Some(format!("bytes */{len}"))
        );
        assert_error(
            res,
            StatusCode::RANGE_NOT_SATISFIABLE,
            "range-not-satisfiable",
        )
        .await;

        for inm in [etag_of(&bytes), format!("W/{}", etag_of(&bytes))] {
            let (status, h, body) = get_all(&app, &url, &[("if-none-match", &inm)]).await;
            assert_eq!(status, StatusCode::NOT_MODIFIED, "{inm}");
            assert!(body.is_empty());
            assert_eq!(must_header(&h, "cache-control"), IMMUTABLE);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn media_extension_sets_the_content_type() {
    let app = spawn_app().await;
    let bytes = b"# Heading\n\nsome *markdown* text\n".to_vec();
    app.uploaded("m", "notes.md", &bytes).await;
    let hash = blake3_hex(&bytes);
    for (suffix, ctype) in [
        (".md", "text/markdown"),
        (".txt", "text/plain"),
        ("", "text/markdown"),
    ] {
        for _ in 0..2 {
            let (status, h, body) =
                get_all(&app, &app.url(&format!("/media/{hash}{suffix}")), &[]).await;
            assert_eq!(status, StatusCode::OK, "{suffix}");
            assert_eq!(body, bytes);
            let got = must_header(&h, "content-type");
            assert!(got.starts_with(ctype), "/media/<hash>{suffix}: {got}");
        }
    }
    // An extension that makes harmless text active is still sandboxed.
    for suffix in [".html", ".svg"] {
        let (status, h, _) = get_all(&app, &app.url(&format!("/media/{hash}{suffix}")), &[]).await;
        assert_eq!(status, StatusCode::OK);
        let sandboxed = header(&h, "content-security-policy")
            .is_some_and(|v| v.split(';').any(|d| d.trim() == "sandbox"));
        let attachment =
            header(&h, "content-disposition").is_some_and(|v| v.starts_with("attachment"));
        assert!(sandboxed || attachment, "{suffix}: {h:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn unknown_or_malformed_hash_is_404_json() {
    let app = spawn_app().await;
    app.uploaded("", "a.txt", b"some content").await;
    let unknown = blake3_hex(b"never uploaded");
    for url in [format!("/media/{unknown}"), format!("/media/{unknown}.txt")] {
        let res = get(&app, &app.url(&url), &[]).await;
        assert_error(res, StatusCode::NOT_FOUND, "hash-not-found").await;
    }
    let real = blake3_hex(b"some content");
    for url in [
        "/media/not-a-hash".to_string(),
        "/media/not-a-hash.txt".to_string(),
        "/media/abc123".to_string(),
        format!("/media/{}", &real[..63]),
        format!("/media/{real}0"),
        format!("/media/{}zz.txt", &real[..62]),
        format!("/media/..{real}"),
        "/media/".to_string(),
    ] {
        let res = get(&app, &app.url(&url), &[]).await;
        assert_refused(res, &[StatusCode::NOT_FOUND], b"some content", &url).await;
    }
}

// ---------------------------------------------------------------------------------------------
// Never served

#[tokio::test(flavor = "multi_thread")]
async fn dot_files_meta_and_partial_names_are_never_served() {
    let app = spawn_app().await;
    let secret = b"TOP-SECRET-do-not-serve";
    app.uploaded("", "x.txt", b"public").await;
    app.uploaded("sub", "y.txt", b"public").await;
    let meta_text = std::fs::read_to_string(app.meta_path("x.txt")).unwrap();
    let uuid = serde_yaml::from_str::<serde_yaml::Value>(&meta_text).unwrap()["uuid"]
        .as_str()
        .unwrap()
        .to_string();
    for rel in [
        ".hidden.txt",
        "sub/.hidden.txt",
        ".hiddendir/inside.txt",
        "x.part",
        "sub/y.txt.part",
        "z.crdownload",
        "w.tmp",
        "~$doc.docx",
        ".staging/leftover",
    ] {
        app.put_file(rel, secret);
    }
    let urls = [
        "/project/uploads/.hidden.txt",
        "/project/uploads/%2Ehidden.txt",
        "/project/uploads/sub/.hidden.txt",
        "/project/uploads/.hiddendir/inside.txt",
        "/project/uploads/x.part",
        "/project/uploads/X.PART",
        "/project/uploads/sub/y.txt.part",
        "/project/uploads/z.crdownload",
        "/project/uploads/w.tmp",
        "/project/uploads/~$doc.docx",
        "/project/uploads/~%24doc.docx",
        "/project/uploads/.staging/leftover",
        "/project/uploads/.meta/x.txt.yaml",
        "/project/uploads/.meta/sub/y.txt.yaml",
        "/project/uploads/%2Emeta/x.txt.yaml",
        "/project/uploads/.meta/",
        "/project/uploads/.meta",
    ];
    for url in urls {
        for method in [Method::GET, Method::HEAD] {
            let res = send(&app, method.clone(), &app.url(url), &[]).await;
            let status = res.status();
            assert!(
                status == StatusCode::BAD_REQUEST || status == StatusCode::NOT_FOUND,
                "{method} {url}: {status}"
            );
            if method == Method::GET {
                let ctype = header(res.headers(), "content-type").unwrap_or_default();
                let body = res.text().await.unwrap();
                assert!(ctype.starts_with("application/json"), "{url}: {ctype}");
                let json: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(json["http_status_code"], status.as_u16());
                assert!(!body.contains("TOP-SECRET"), "{url} leaks a hidden file");
                assert!(!body.contains(&uuid), "{url} leaks meta");
            }
        }
    }
    for (rel, _) in [(".hidden.txt", 0), ("x.part", 0)] {
        assert_eq!(
            std::fs::read(app.file_path(rel)).unwrap(),
            secret,
            "untouched"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn folder_path_is_404() {
    let app = spawn_app().await;
    app.uploaded("folder/inner", "f.txt", b"in a folder").await;
    for url in [
        "/project/uploads/folder",
        "/project/uploads/folder/",
        "/project/uploads/folder/inner",
        "/project/uploads/",
        "/project/uploads",
    ] {
        let res = get(&app, &app.url(url), &[]).await;
        assert_refused(res, &[StatusCode::NOT_FOUND], b"in a folder", url).await;
    }
    let res = get(&app, &app.url("/project/uploads/folder/missing.txt"), &[]).await;
    assert_refused(res, &[StatusCode::NOT_FOUND], b"", "missing file").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn served_files_keep_their_last_modified_across_requests() {
    let app = spawn_app().await;
    let before = SystemTime::now() - Duration::from_secs(2);
    app.uploaded("t", "a.txt", b"timed").await;
    let (_, h, _) = get_all(&app, &app.url("/project/uploads/t/a.txt"), &[]).await;
    let lm = httpdate::parse_http_date(&must_header(&h, "last-modified")).unwrap();
    assert!(lm >= before && lm <= SystemTime::now() + Duration::from_secs(1));
    let (_, h2, _) = get_all(&app, &app.url("/project/uploads/t/a.txt"), &[]).await;
    assert_eq!(header(&h, "last-modified"), header(&h2, "last-modified"));
}

#[tokio::test(flavor = "multi_thread")]
async fn files_at_the_memory_limit_and_just_above_are_served_exactly() {
    let app = spawn_app_with(|c| c.server.hot_file_max_bytes = 4096).await;
    for len in [4095, 4096, 4097, 3 * 4096 + 17] {
        let rel = format!("edge/f{len}.txt");
        let bytes = text_bytes(len);
        app.uploaded("edge", &format!("f{len}.txt"), &bytes).await;
        for round in 0..2 {
            assert_serves(&app, &rel, &bytes, &format!("{len} bytes round {round}")).await;
        }
        let (status, h, body) = get_all(
            &app,
            &uploads_url(&app, &rel),
            &[("range", "bytes=4090-4100")],
        )
        .await;
        assert_eq!(status, StatusCode::PARTIAL_CONTENT, "{len}");
        let last = (len - 1).min(4100);
        assert_eq!(
            must_header(&h, "content-range"),
            format!("bytes 4090-{last}/{len}")
        );
        assert_eq!(body, bytes[4090..=last], "{len}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn empty_file_is_served_with_its_etag_and_any_range_is_416() {
    let app = spawn_app().await;
    app.put_file("empty/zero.txt", b"");
    for round in 0..2 {
        let (status, h, body) =
            get_all(&app, &app.url("/project/uploads/empty/zero.txt"), &[]).await;
        assert_eq!(status, StatusCode::OK, "round {round}");
        assert!(body.is_empty());
        assert_eq!(must_header(&h, "content-length"), "0");
        assert_eq!(must_header(&h, "etag"), etag_of(b""));
    }
    let res = get(
        &app,
        &app.url("/project/uploads/empty/zero.txt"),
        &[("range", "bytes=0-")],
    )
    .await;
    assert_eq!(
        header(res.headers(), "content-range").as_deref(),
        Some("bytes */0")
    );
    assert_error(
        res,
        StatusCode::RANGE_NOT_SATISFIABLE,
        "range-not-satisfiable",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn suffix_range_of_an_empty_file_gets_the_empty_file_not_a_wrapped_content_range() {
    let app = spawn_app().await;
    app.put_file("empty/zero.txt", b"");
    let url = app.url("/project/uploads/empty/zero.txt");
    let (status, h, body) = get_all(&app, &url, &[("range", "bytes=-5")]).await;
    assert_eq!(status, StatusCode::OK);
    assert!(h.get("content-range").is_none());
    assert!(body.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn file_replaced_on_disk_by_rename_is_served_fresh() {
    let app = spawn_app().await;
    for (rel, v1) in both_sizes(&app).await {
        assert_serves(&app, &rel, &v1, &rel).await;
        assert_serves(&app, &rel, &v1, &rel).await;
        // What editors do: write a new file beside it and rename it over the old one.
        let mut v2 = v1.clone();
        v2[1] = b'#';
        let tmp = app.dir.path().join("replacement");
        std::fs::write(&tmp, &v2).unwrap();
        std::fs::rename(&tmp, app.file_path(&rel)).unwrap();
        assert_serves(&app, &rel, &v2, &format!("{rel} after rename")).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn file_deleted_on_disk_is_no_longer_served_by_path_or_hash() {
    let app = spawn_app().await;
    for (rel, bytes) in both_sizes(&app).await {
        let media = app.url(&format!("/media/{}.txt", blake3_hex(&bytes)));
        assert_serves(&app, &rel, &bytes, &rel).await;
        assert_serves(&app, &rel, &bytes, &rel).await;
        let (status, _, _) = get_all(&app, &media, &[]).await;
        assert_eq!(status, StatusCode::OK);
        std::fs::remove_file(app.file_path(&rel)).unwrap();
        let res = get(&app, &uploads_url(&app, &rel), &[]).await;
        assert_refused(res, &[StatusCode::NOT_FOUND], &bytes[..64], &rel).await;
        let res = get(&app, &media, &[]).await;
        assert_refused(res, &[StatusCode::NOT_FOUND], &bytes[..64], &media).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn media_extension_is_case_insensitive() {
    let app = spawn_app().await;
    let bytes = png(3, 3);
    app.uploaded("", "p.png", &bytes).await;
    let (status, h, body) = get_all(
        &app,
        &app.url(&format!("/media/{}.PNG", blake3_hex(&bytes))),
        &[],
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, bytes);
    assert_eq!(must_header(&h, "content-type"), "image/png");
}

#[tokio::test(flavor = "multi_thread")]
async fn writing_methods_on_served_files_are_405_json() {
    let app = spawn_app().await;
    app.uploaded("", "w.txt", b"read only").await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let res = send(
            &app,
            method.clone(),
            &app.url("/project/uploads/w.txt"),
            &[],
        )
        .await;
        assert_error(res, StatusCode::METHOD_NOT_ALLOWED, "method-not-allowed").await;
    }
    assert_eq!(std::fs::read(app.file_path("w.txt")).unwrap(), b"read only");
}
