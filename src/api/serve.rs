//! Serving file content: `/project/uploads/<path>` and `/media/<hash>[.<ext>]`.
//!
//! The hot path: small files are kept in memory with their headers ready, keyed by request
//! path and validated on every hit by one `stat` (device, inode, size, mtime and ctime must all
//! match, so any change on disk or a swapped symlink is a miss). Everything else streams from
//! disk in large chunks on the blocking pool. ETags are BLAKE3 hashes; conditional requests,
//! single and multiple byte ranges, downloads and sandboxing of active content are handled
//! here. Paths are parsed and contained by `storage::paths` before anything is opened.
//!
//! `?thumb=` with a configured size on an image answers with the thumbnail from `thumbs`
//! under its own ETag (`"<hash>-<spec>"`); served thumbnails enter the same in-memory cache
//! under their own key, validated by the source file's `stat`. Any other `thumb` value, and
//! any source that cannot be thumbnailed, gets the original (PocketBase's behaviour).

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix_web::body::{BodySize, BoxBody, MessageBody, SizedStream};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};
use bytes::Bytes;
use percent_encoding::{percent_decode_str, utf8_percent_encode, NON_ALPHANUMERIC};

use super::ranges::{self, RangeAnswer, Segment};
use super::AppState;
use crate::auth::TokenKind;
use crate::error::ApiError;
use crate::hashing::ContentHash;
use crate::library::{Entry, LibraryError};
use crate::signing::{now_secs, CredentialError, Target};
use crate::sniff;
use crate::storage::paths::MediaPath;
use crate::thumbs::{self, ThumbSpec};

/// Read size when streaming from disk.
const CHUNK: usize = 512 * 1024;
const NO_CACHE: &str = "no-cache";
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Protected content may be kept by the browser that was let in, never by a shared cache.
const PRIVATE_NO_CACHE: &str = "private, no-cache";
const PRIVATE_IMMUTABLE: &str = "private, max-age=31536000, immutable";

pub fn configure(cfg: &mut web::ServiceConfig) {
    // A scope with a default service matches by plain prefix, cheaper than a regex route on
    // the hottest path.
    cfg.service(web::scope("/project/uploads").default_service(web::to(serve_upload)))
        .service(
            web::resource("/media/{name}")
                .route(web::get().to(serve_media))
                .route(web::head().to(serve_media)),
        );
}

/// What identifies one version of a file on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileId {
    #[cfg(unix)]
    fn of(md: &std::fs::Metadata) -> FileId {
        use std::os::unix::fs::MetadataExt;
        FileId {
            dev: md.dev(),
            ino: md.ino(),
            size: md.len(),
            mtime: (md.mtime(), md.mtime_nsec()),
            ctime: (md.ctime(), md.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    fn of(md: &std::fs::Metadata) -> FileId {
        let t = |t: io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (d.as_secs() as i64, d.subsec_nanos() as i64))
        };
        FileId {
            dev: 0,
            ino: 0,
            size: md.len(),
            mtime: t(md.modified()),
            ctime: t(md.created()),
        }
    }
}

/// Headers of one file version, built once.
struct Prepared {
    content_type: HeaderValue,
    etag: HeaderValue,
    etag_text: String,
    last_modified: HeaderValue,
    /// Last-Modified as whole seconds, for If-Modified-Since.
    modified: SystemTime,
    active: bool,
    filename: String,
    size: u64,
}

impl Prepared {
    fn new(
        hash: &str,
        mime: &str,
        modified: SystemTime,
        size: u64,
        filename: &str,
        ext: &str,
    ) -> Prepared {
        let modified = UNIX_EPOCH
            + Duration::from_secs(
                modified
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
            );
        let etag_text = format!("\"{hash}\"");
        Prepared {
            content_type: HeaderValue::from_str(mime)
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            etag: HeaderValue::from_str(&etag_text).unwrap_or(HeaderValue::from_static("\"\"")),
            etag_text,
            last_modified: HeaderValue::from_str(&httpdate::fmt_http_date(modified))
                .unwrap_or(HeaderValue::from_static("")),
            modified,
            active: sniff::is_active_content(mime, ext),
            filename: filename.to_string(),
            size,
        }
    }
}

/// A public file in memory. Its meta file is watched too: meta edited to `protected: true`
/// must stop the next hit, not the next content change.
struct Hot {
    id: FileId,
    path: PathBuf,
    meta_id: Option<FileId>,
    meta_path: PathBuf,
    body: Bytes,
    prepared: Prepared,
    /// For a thumbnail: its disk cache entry, whose recency each hit refreshes.
    thumb: Option<Arc<thumbs::Usage>>,
}

impl Hot {
    fn touch(&self) {
        if let Some(usage) = &self.thumb {
            usage.touch();
        }
    }
}

/// Small files in memory with ready headers; bounded by `server.hot_cache_bytes`.
pub struct HotCache {
    map: RwLock<HashMap<String, Arc<Hot>>>,
    used: AtomicU64,
    max_bytes: u64,
    max_file: u64,
}

impl HotCache {
    pub fn new(max_bytes: u64, max_file: u64) -> HotCache {
        HotCache {
            map: RwLock::new(HashMap::new()),
            used: AtomicU64::new(0),
            max_bytes,
            max_file: max_file.min(max_bytes),
        }
    }

    /// A cached version that is still what is on disk.
    fn get(&self, key: &str) -> Option<Arc<Hot>> {
        let hot = self
            .map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()?;
        let same = |path: &Path, id: Option<FileId>| {
            std::fs::metadata(path).ok().map(|md| FileId::of(&md)) == id
        };
        if same(&hot.path, Some(hot.id)) && same(&hot.meta_path, hot.meta_id) {
            Some(hot)
        } else {
            self.remove(key);
            None
        }
    }

    fn remove(&self, key: &str) {
        if let Some(old) = self
            .map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key)
        {
            self.used
                .fetch_sub(old.body.len() as u64, Ordering::Relaxed);
        }
    }

    fn insert(&self, key: String, hot: Arc<Hot>) {
        let size = hot.body.len() as u64;
        let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
        if let Some(old) = map.remove(&key) {
            self.used
                .fetch_sub(old.body.len() as u64, Ordering::Relaxed);
        }
        // Evict arbitrary entries until the new one fits: the cache is a speed-up for hot
        // small files, and a re-read costs one small file read.
        while self.used.load(Ordering::Relaxed) + size > self.max_bytes {
            let Some(k) = map.keys().next().cloned() else {
                break;
            };
            if let Some(old) = map.remove(&k) {
                self.used
                    .fetch_sub(old.body.len() as u64, Ordering::Relaxed);
            }
        }
        self.used.fetch_add(size, Ordering::Relaxed);
        map.insert(key, hot);
    }
}

/// Where the bytes come from.
enum Source {
    Memory(Bytes),
    Disk(Arc<File>),
}

/// A file by path: ETag (BLAKE3), conditional requests, byte ranges, `?download`, `?thumb`.
#[utoipa::path(
    method(get, head), path = "/project/uploads/{path}", operation_id = "getFile", tag = "content",
    params(("path" = String, Path, description = "The file, relative to `uploads/`, percent-encoded", example = "logo.png"), crate::api::openapi::ContentQuery),
    responses(
        (status = 200, description = "The file (or thumbnail)", content_type = "*/*", body = crate::api::openapi::Binary,
            headers(("ETag" = String, description = "The BLAKE3 hash in quotes (`\"<hash>-<spec>\"` for a thumbnail)"),
                    ("Cache-Control" = String, description = "`no-cache` (`private, no-cache` when protected)"))),
        crate::api::openapi::ContentAnswers,
    ),
)]
async fn serve_upload(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return Err(ApiError::method_not_allowed(
            super::openapi::allowed_methods("/project/uploads/{path}"),
            "Files are read with GET or HEAD",
        ));
    }
    // Parsed before the cache is consulted: a request path that is not a valid media path
    // never reaches anything, cached or not. (Media keys start with NUL, which no valid path
    // holds, so the two kinds of key cannot meet.)
    let p = upload_path(req.path())?;
    let thumb = thumb_request(&req, &state);
    let key = match thumb {
        None => Cow::Borrowed(p.as_str()),
        Some(spec) => Cow::Owned(thumb_key(p.as_str(), spec)),
    };
    // Protected by a glob: decided before anything is looked up, so a protected path that
    // does not exist gets the same answer as one that does. The hot cache holds public
    // files only.
    let granted = state.library.protection().path_protected(&p);
    if granted {
        check_credential(&req, &state, Target::Path(p.as_str()))?;
    } else if let Some(hot) = state.hot.get(&key) {
        hot.touch();
        return Ok(respond(
            &req,
            &hot.prepared,
            Source::Memory(hot.body.clone()),
            NO_CACHE,
        ));
    }
    if p.is_root() {
        return Err(LibraryError::FileNotFound.into());
    }
    let ask = Ask {
        key: key.into_owned(),
        thumb,
        mime_override: None,
        cache_control: NO_CACHE,
        granted,
        target: Target::Path(p.as_str()),
    };
    serve_entry(&req, &state, &p, ask).await
}

/// Content by its BLAKE3 hash: an immutable URL.
#[utoipa::path(
    method(get, head), path = "/media/{name}", operation_id = "getContent", tag = "content",
    params(("name" = String, Path, description = "`<hash>` or `<hash>.<ext>` (the extension sets only the Content-Type)"), crate::api::openapi::ContentQuery),
    responses(
        (status = 200, description = "The file (or thumbnail)", content_type = "*/*", body = crate::api::openapi::Binary,
            headers(("ETag" = String, description = "The BLAKE3 hash in quotes (`\"<hash>-<spec>\"` for a thumbnail)"),
                    ("Cache-Control" = String, description = "`public, max-age=31536000, immutable` (`private, …` when protected)"))),
        crate::api::openapi::ContentAnswers,
    ),
)]
async fn serve_media(
    req: HttpRequest,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thumb = thumb_request(&req, &state);
    let mut key = format!("\0media/{}", name.as_str());
    if let Some(spec) = thumb {
        key = thumb_key(&key, spec);
    }
    if let Some(hot) = state.hot.get(&key) {
        hot.touch();
        return Ok(respond(
            &req,
            &hot.prepared,
            Source::Memory(hot.body.clone()),
            IMMUTABLE,
        ));
    }
    let (hash, ext) = match name.split_once('.') {
        Some((h, e)) => (h, Some(e.to_ascii_lowercase())),
        None => (name.as_str(), None),
    };
    let not_found = || ApiError::not_found("hash-not-found", "No file has this hash");
    let hash: ContentHash = hash.parse().map_err(|_| not_found())?;
    let hex = hash.to_hex();
    let entries = state.library.by_hash(&hex).await?;
    // Any public copy serves the content freely; content that only protected paths hold
    // needs a credential for the hash.
    let entry = entries
        .iter()
        .find(|e| !state.library.protection_of(e).protected)
        .or(entries.first())
        .ok_or_else(not_found)?;
    let mime = ext.as_deref().map(sniff::by_extension);
    let ask = Ask {
        key,
        thumb,
        mime_override: mime,
        cache_control: IMMUTABLE,
        granted: false,
        target: Target::Hash(&hex),
    };
    serve_entry(&req, &state, &entry.path, ask).await
}

/// The media path a `/project/uploads/<path>` request names: percent-decoded, then parsed.
pub(crate) fn upload_path(request_path: &str) -> Result<MediaPath, ApiError> {
    let raw = request_path.strip_prefix("/project/uploads/").unwrap_or("");
    let decoded = percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| ApiError::bad_request("invalid-path", "Path is not valid UTF-8"))?;
    Ok(MediaPath::parse(&decoded)?)
}

/// Opens protected content if the request carries a valid file token (`?token=`) or a valid
/// signature of `target` (`?expires=&sig=`).
fn check_credential(
    req: &HttpRequest,
    state: &AppState,
    target: Target<'_>,
) -> Result<(), ApiError> {
    let get = |key| query_values(req.query_string(), key).next();
    let now = now_secs();
    let mut failure = None;
    if let Some(token) = get("token") {
        // The files token that issued it must still be there and enabled; content reads do
        // not count against its call limit.
        let checked = state
            .signer
            .check_file_token(&token, now)
            .and_then(|issuer| {
                state
                    .tokens
                    .check_reference(TokenKind::Files, issuer, false)
                    .map(|_| ())
                    .map_err(|_| CredentialError::BadFileToken)
            });
        match checked {
            Ok(()) => return Ok(()),
            Err(e) => failure = Some(e),
        }
    }
    if let (Some(expires), Some(sig)) = (get("expires"), get("sig")) {
        let checked = match expires.parse::<u64>() {
            Ok(expires) => state.signer.verify(target, expires, &sig, now),
            Err(_) => Err(CredentialError::BadSignature),
        };
        match checked {
            Ok(()) => return Ok(()),
            Err(e) => failure = Some(e),
        }
    }
    Err(failure.map_or_else(ApiError::protected, ApiError::from))
}

/// What a request asks of [`serve_entry`].
struct Ask<'a> {
    /// The hot-cache key of the answer.
    key: String,
    thumb: Option<ThumbSpec>,
    /// The content type a hash URL's extension names.
    mime_override: Option<String>,
    /// For public content; protected content is sent `private`.
    cache_control: &'static str,
    /// A credential was already checked.
    granted: bool,
    /// What a credential must open when the file turns out to be protected.
    target: Target<'a>,
}

/// The identity of a file's meta file, taken before the meta is read.
struct MetaStamp {
    path: PathBuf,
    id: Option<FileId>,
}

/// Serves a file found by path, or its thumbnail; small public answers enter the hot cache.
async fn serve_entry(
    req: &HttpRequest,
    state: &AppState,
    p: &MediaPath,
    mut ask: Ask<'_>,
) -> Result<HttpResponse, ApiError> {
    // The meta file's identity is taken before the meta is read: if it changes after, the
    // cached entry's identity is older and the next hit misses.
    let meta_path = state.library.layout().meta_file(p)?;
    let meta = MetaStamp {
        id: std::fs::metadata(&meta_path).ok().map(|md| FileId::of(&md)),
        path: meta_path,
    };
    let entry = match state.library.file(p).await {
        Err(LibraryError::NotAFile) => return Err(LibraryError::FileNotFound.into()),
        other => other?,
    };
    let guard = state.library.protection_of(&entry);
    let protected = guard.protected;
    if protected && !ask.granted {
        check_credential(req, state, ask.target)?;
    }
    ask.cache_control = match (protected, ask.cache_control) {
        (false, cc) => cc,
        (true, IMMUTABLE) => PRIVATE_IMMUTABLE,
        (true, _) => PRIVATE_NO_CACHE,
    };
    // Protected answers are never kept in memory: every hit must show its credential. Nor
    // are files reached through a symlink: the link target's meta decides, not the link's.
    let hot_meta = (!protected && !guard.linked).then_some(meta);
    if let Some(spec) = ask.thumb {
        if let Some(res) = serve_thumb(req, state, &entry, &ask, spec, hot_meta.as_ref()).await? {
            return Ok(res);
        }
    }
    let Ask {
        key,
        mime_override,
        cache_control,
        ..
    } = ask;
    let path = state.library.layout().file(p)?;
    let max_file = state.hot.max_file;
    let opened = web::block(move || open_version(&path, max_file))
        .await
        .map_err(|e| ApiError::unexpected(&io::Error::other(e)))?
        .map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => LibraryError::FileNotFound.into(),
            io::ErrorKind::PermissionDenied => LibraryError::Unreadable.into(),
            _ => ApiError::unexpected(&e),
        })?;
    let (file, id, body, path) = opened;
    let ext = crate::library::names::split_name(p.name())
        .1
        .to_ascii_lowercase();
    let mime = mime_override.unwrap_or_else(|| entry.mime().to_string());
    let hash = match &body {
        // In-memory bytes carry their own hash: always exact, even if the file just changed.
        Some(b) => ContentHash::of(b).to_hex(),
        None => entry_hash(&entry)?,
    };
    let prepared = Prepared::new(&hash, &mime, entry.modified, id.size, p.name(), &ext);
    match body {
        Some(body) => {
            if let (Some(meta), true) = (hot_meta, Some(hash.as_str()) == entry.hash()) {
                let hot = Arc::new(Hot {
                    id,
                    path,
                    meta_id: meta.id,
                    meta_path: meta.path,
                    body: body.clone(),
                    prepared,
                    thumb: None,
                });
                state.hot.insert(key, hot.clone());
                return Ok(respond(
                    req,
                    &hot.prepared,
                    Source::Memory(body),
                    cache_control,
                ));
            }
            Ok(respond(req, &prepared, Source::Memory(body), cache_control))
        }
        None => Ok(respond(
            req,
            &prepared,
            Source::Disk(Arc::new(file)),
            cache_control,
        )),
    }
}

/// The spec of `?thumb=` when it names a configured size; `None` serves the original.
fn thumb_request(req: &HttpRequest, state: &AppState) -> Option<ThumbSpec> {
    let value = query_values(req.query_string(), "thumb").next()?;
    state.thumbs.allowed(&value)
}

/// The hot-cache key of a thumbnail of what `base` (a path, or a `\0media/` key) names.
/// Specs hold no `?`, so the text after the last one tells the spec apart from any path.
fn thumb_key(base: &str, spec: ThumbSpec) -> String {
    format!("\0thumb:{base}?{spec}")
}

/// Serves the thumbnail of an entry; `None` when it has none (not an image, or one that
/// cannot be thumbnailed), so the original is served.
async fn serve_thumb(
    req: &HttpRequest,
    state: &AppState,
    entry: &Entry,
    ask: &Ask<'_>,
    spec: ThumbSpec,
    hot_meta: Option<&MetaStamp>,
) -> Result<Option<HttpResponse>, ApiError> {
    let p = &entry.path;
    let Some(kind) = thumbs::SourceKind::of_mime(entry.mime()) else {
        return Ok(None);
    };
    let Some(hash) = entry.hash().and_then(|h| h.parse::<ContentHash>().ok()) else {
        return Ok(None);
    };
    let path = state.library.layout().file(p)?;
    let source = thumbs::Source {
        path: path.clone(),
        hash,
        kind,
    };
    let Some(thumb) = state.thumbs.get(source, spec).await? else {
        return Ok(None);
    };
    let stem = crate::library::names::split_name(p.name()).0;
    let prepared = Prepared::new(
        &format!("{hash}-{spec}"),
        thumb.mime,
        entry.modified,
        thumb.bytes.len() as u64,
        &format!("{stem}-{spec}.{}", thumb.ext),
        thumb.ext,
    );
    let res = respond(
        req,
        &prepared,
        Source::Memory(thumb.bytes.clone()),
        ask.cache_control,
    );
    let Some(meta) = hot_meta else {
        return Ok(Some(res));
    };
    // Kept in memory only while the source on disk is the version the meta described, so a
    // changed source misses at once.
    let (size, modified) = (entry.size, entry.modified);
    let stat = web::block(move || std::fs::metadata(&path).map(|md| (md, path))).await;
    if let Ok(Ok((md, path))) = stat {
        let same = md.len() == size && md.modified().ok() == Some(modified);
        if same && thumb.bytes.len() as u64 <= state.hot.max_file {
            let hot = Hot {
                id: FileId::of(&md),
                path,
                meta_id: meta.id,
                meta_path: meta.path.clone(),
                body: thumb.bytes.clone(),
                prepared,
                thumb: thumb.usage.clone(),
            };
            state.hot.insert(ask.key.clone(), Arc::new(hot));
        }
    }
    Ok(Some(res))
}

fn entry_hash(entry: &Entry) -> Result<String, ApiError> {
    entry
        .hash()
        .map(str::to_string)
        .ok_or_else(|| ApiError::unexpected(&io::Error::other("meta has no hash")))
}

type Opened = (File, FileId, Option<Bytes>, PathBuf);

/// Opens a file and, when small, reads it whole.
fn open_version(path: &Path, max_in_memory: u64) -> io::Result<Opened> {
    use std::io::Read;
    let mut file = File::open(path)?;
    let md = file.metadata()?;
    if !md.is_file() {
        return Err(io::ErrorKind::NotFound.into());
    }
    let id = FileId::of(&md);
    let body = if md.len() <= max_in_memory {
        let mut buf = Vec::with_capacity(md.len() as usize);
        file.read_to_end(&mut buf)?;
        Some(Bytes::from(buf))
    } else {
        None
    };
    Ok((file, id, body, path.to_path_buf()))
}

/// The values of `key=value` pairs in a query string, percent-decoded; pairs that are not
/// valid UTF-8 once decoded are skipped. The one reader of query parameters on the serving
/// path: it allocates only for a value that holds an escape.
fn query_values<'q>(query: &'q str, key: &'q str) -> impl Iterator<Item = Cow<'q, str>> + 'q {
    query.split('&').filter_map(move |kv| {
        let (k, v) = kv.split_once('=')?;
        (k == key)
            .then(|| percent_decode_str(v).decode_utf8().ok())
            .flatten()
    })
}

/// `?download=1` (or `t`, `true`).
fn wants_download(req: &HttpRequest) -> bool {
    query_values(req.query_string(), "download").any(|v| matches!(&*v, "1" | "t" | "true"))
}

fn content_disposition(filename: &str) -> HeaderValue {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(filename, NON_ALPHANUMERIC);
    HeaderValue::from_str(&format!(
        "attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}"
    ))
    .unwrap_or(HeaderValue::from_static("attachment"))
}

fn etag_matches(list: &str, etag: &str, weak: bool) -> bool {
    list.split(',').map(str::trim).any(|t| {
        if t == "*" {
            return true;
        }
        match t.strip_prefix("W/") {
            Some(w) => weak && w == etag,
            None => t == etag,
        }
    })
}

fn header_str(req: &HttpRequest, name: HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

fn http_date(req: &HttpRequest, name: HeaderName) -> Option<SystemTime> {
    httpdate::parse_http_date(header_str(req, name)?).ok()
}

/// The status that conditional headers decide, if any (RFC 9110 §13.2.2).
fn precondition(req: &HttpRequest, p: &Prepared) -> Option<StatusCode> {
    if let Some(list) = header_str(req, header::IF_MATCH) {
        if !etag_matches(list, &p.etag_text, false) {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    } else if let Some(t) = http_date(req, header::IF_UNMODIFIED_SINCE) {
        if p.modified > t {
            return Some(StatusCode::PRECONDITION_FAILED);
        }
    }
    if let Some(list) = header_str(req, header::IF_NONE_MATCH) {
        if etag_matches(list, &p.etag_text, true) {
            return Some(StatusCode::NOT_MODIFIED);
        }
    } else if let Some(t) = http_date(req, header::IF_MODIFIED_SINCE) {
        if p.modified <= t {
            return Some(StatusCode::NOT_MODIFIED);
        }
    }
    None
}

/// Whether a Range header applies, given If-Range.
fn range_applies(req: &HttpRequest, p: &Prepared) -> bool {
    match header_str(req, header::IF_RANGE) {
        None => true,
        Some(v) if v.starts_with('"') => v == p.etag_text,
        Some(v) => httpdate::parse_http_date(v).is_ok_and(|t| t == p.modified),
    }
}

fn respond(
    req: &HttpRequest,
    p: &Prepared,
    source: Source,
    cache_control: &'static str,
) -> HttpResponse {
    let mut status = StatusCode::OK;
    if let Some(s) = precondition(req, p) {
        if s == StatusCode::NOT_MODIFIED && !matches!(*req.method(), Method::GET | Method::HEAD) {
            status = StatusCode::PRECONDITION_FAILED;
        } else {
            status = s;
        }
    }
    if status == StatusCode::PRECONDITION_FAILED {
        let mut res =
            ApiError::new(status, "precondition-failed", "Precondition failed").error_response();
        res.headers_mut().insert(header::ETAG, p.etag.clone());
        return res;
    }
    let mut res = HttpResponse::build(status);
    res.insert_header((header::ETAG, p.etag.clone()))
        .insert_header((header::LAST_MODIFIED, p.last_modified.clone()))
        .insert_header((
            header::CACHE_CONTROL,
            HeaderValue::from_static(cache_control),
        ));
    if status != StatusCode::OK {
        return res.finish();
    }
    res.insert_header((header::CONTENT_TYPE, p.content_type.clone()))
        .insert_header((
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .insert_header((header::ACCEPT_RANGES, HeaderValue::from_static("bytes")));
    if p.active {
        res.insert_header((
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static("sandbox"),
        ));
    }
    if wants_download(req) {
        res.insert_header((
            header::CONTENT_DISPOSITION,
            content_disposition(&p.filename),
        ));
    }
    let mut segments = vec![Segment::Range(0, p.size)];
    let range = header_str(req, header::RANGE)
        .filter(|_| *req.method() == Method::GET && range_applies(req, p));
    if let Some(range) = range {
        match ranges::answer(range, p.size) {
            RangeAnswer::Whole => {}
            RangeAnswer::Partial(ranges) if ranges.len() == 1 => {
                let r = ranges[0];
                res.status(StatusCode::PARTIAL_CONTENT)
                    .insert_header((header::CONTENT_RANGE, r.content_range(p.size)));
                segments = vec![Segment::Range(r.start, r.length)];
            }
            RangeAnswer::Partial(ranges) => {
                let boundary = format!("{:032x}", rand::random::<u128>());
                let ctype = p
                    .content_type
                    .to_str()
                    .unwrap_or("application/octet-stream");
                segments = ranges::multipart(&ranges, &boundary, ctype, p.size);
                res.status(StatusCode::PARTIAL_CONTENT).insert_header((
                    header::CONTENT_TYPE,
                    format!("multipart/byteranges; boundary={boundary}"),
                ));
            }
            RangeAnswer::Unsatisfiable => {
                let mut res = ApiError::new(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    "range-not-satisfiable",
                    "Range not satisfiable",
                )
                .error_response();
                if let Ok(v) = HeaderValue::from_str(&format!("bytes */{}", p.size)) {
                    res.headers_mut().insert(header::CONTENT_RANGE, v);
                }
                return res;
            }
        }
    }
    let total = ranges::body_len(&segments);
    if *req.method() == Method::HEAD {
        return res.body(HeadBody(total));
    }
    match source {
        Source::Memory(bytes) => res.body(memory_body(&bytes, &segments)),
        Source::Disk(file) => res.body(BoxBody::new(SizedStream::new(
            total,
            disk_stream(file, segments),
        ))),
    }
}

fn memory_body(bytes: &Bytes, segments: &[Segment]) -> Bytes {
    let slice = |s: &Segment| match s {
        Segment::Text(t) => t.clone(),
        Segment::Range(start, len) => {
            let end = (*start + *len).min(bytes.len() as u64) as usize;
            bytes.slice((*start as usize).min(end)..end)
        }
    };
    match segments {
        [one] => slice(one),
        many => {
            let mut out = bytes::BytesMut::new();
            for s in many {
                out.extend_from_slice(&slice(s));
            }
            out.freeze()
        }
    }
}

/// Streams segments of a file, read on the blocking pool once the body is first polled.
fn disk_stream(
    file: Arc<File>,
    segments: Vec<Segment>,
) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + 'static {
    let (tx, rx) = tokio::sync::mpsc::channel::<io::Result<Bytes>>(2);
    let mut start = Some((file, segments, tx));
    futures_util::stream::unfold(rx, move |mut rx| {
        if let Some((file, segments, tx)) = start.take() {
            tokio::task::spawn_blocking(move || read_segments(&file, &segments, &tx));
        }
        async move { rx.recv().await.map(|item| (item, rx)) }
    })
}

fn read_segments(
    file: &File,
    segments: &[Segment],
    tx: &tokio::sync::mpsc::Sender<io::Result<Bytes>>,
) {
    for s in segments {
        match s {
            Segment::Text(t) => {
                if tx.blocking_send(Ok(t.clone())).is_err() {
                    return;
                }
            }
            Segment::Range(start, len) => {
                let (mut pos, end) = (*start, start + len);
                while pos < end {
                    let want = ((end - pos) as usize).min(CHUNK);
                    let mut buf = vec![0u8; want];
                    let item = match read_at(file, &mut buf, pos) {
                        Ok(0) => Err(io::Error::new(
                            io::ErrorKind::UnexpectedEof,
                            "file shrank while sent",
                        )),
                        Ok(n) => {
                            buf.truncate(n);
                            pos += n as u64;
                            Ok(Bytes::from(buf))
                        }
                        Err(e) => Err(e),
                    };
                    let failed = item.is_err();
                    if tx.blocking_send(item).is_err() || failed {
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, pos)
}

#[cfg(windows)]
fn read_at(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    std::os::windows::fs::FileExt::seek_read(file, buf, pos)
}

/// The body of a HEAD response: announces the length, sends nothing.
struct HeadBody(u64);

impl MessageBody for HeadBody {
    type Error = std::convert::Infallible;

    fn size(&self) -> BodySize {
        BodySize::Sized(self.0)
    }

    fn poll_next(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Bytes, Self::Error>>> {
        Poll::Ready(None)
    }
}
