//! The OpenAPI 3.1 description of the HTTP API, served at `GET /api/openapi.json`.
//!
//! Each handler carries its own `#[utoipa::path]` (route, parameters, body, every status it
//! answers); this module owns what they share: the JSON shapes of requests and answers, the
//! error body, the auth schemes, and the document that gathers them. The document is built
//! once and served as prepared bytes.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use actix_web::{web, HttpResponse};
use serde::Serialize;
use serde_json::Value;
use utoipa::openapi::schema::{AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, IntoResponses, Modify, OpenApi, ToSchema};

use super::params::{FLAG_NO, FLAG_YES};
use super::{access, files, folders, from_url, health, meta, search, serve, upload};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/openapi.json").route(web::get().to(spec)));
}

/// The OpenAPI document of this server, as JSON.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    operation_id = "openapi",
    tag = "server",
    responses(
        (status = 200, description = "This document", content_type = "application/json", body = Object),
    ),
)]
pub async fn spec() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        document()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

/// The document, built once and shared by the served JSON and the `Allow` table.
fn document() -> &'static utoipa::openapi::OpenApi {
    static DOC: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOC.get_or_init(ApiDoc::openapi)
}

/// The methods the document lists for a route (as written in it, e.g. `/api/files` or
/// `/media/{name}`), as an `Allow` header value: `GET, POST, PUT, DELETE`.
pub fn allowed_methods(route: &str) -> Option<&'static str> {
    static ALLOW: OnceLock<HashMap<String, String>> = OnceLock::new();
    let table = ALLOW.get_or_init(|| {
        document()
            .paths
            .paths
            .iter()
            .map(|(route, item)| {
                let methods = [
                    ("GET", item.get.is_some()),
                    ("HEAD", item.head.is_some()),
                    ("POST", item.post.is_some()),
                    ("PUT", item.put.is_some()),
                    ("PATCH", item.patch.is_some()),
                    ("DELETE", item.delete.is_some()),
                ]
                .iter()
                .filter(|(_, present)| *present)
                .map(|(m, _)| *m)
                .collect::<Vec<_>>()
                .join(", ");
                (route.clone(), methods)
            })
            .collect()
    });
    table.get(route).map(String::as_str)
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "flextype",
        description = "A media backend for flat-file websites: files are the truth, \
            content-addressed by BLAKE3. Compatible with Flextype 0.9's Files API.\n\n\
            Every parameter of an `/api` call may be sent in the query string, as a JSON body \
            or as a form body (the body wins). `path` may also be sent as `id`. Tokens: \
            `token` (files token) or `Authorization: Bearer <t>`; `access_token` or \
            `X-Access-Token: <t>` for writes. Every error is an `Error` body.",
        license(name = "MIT"),
    ),
    paths(
        files::fetch, upload::upload, files::move_file, files::delete_file, files::copy_file,
        meta::update, meta::add, meta::remove,
        search::search, access::file_token, access::sign_urls, from_url::from_url,
        folders::fetch, folders::create, folders::rename, folders::delete, folders::copy,
        health::health, spec,
        serve::serve_upload, serve::serve_media,
    ),
    components(schemas(
        Error, FileObject, FileData, UploadData, Uploaded, FilesData, FilesList, FolderObject, FolderData, FoldersData,
        SearchResult, FileToken, SignedUrls, SignedUrl, Health, Reconcile, Problem, ThumbStats,
        PathBody, MoveBody, MetaBody, MetaFieldBody, UploadForm, FromUrlBody,
        SignUrlsBody,
    )),
    modifiers(&Security),
    tags(
        (name = "files", description = "Files and their meta (Flextype's Files API)"),
        (name = "folders", description = "Folders with their `.meta` twins"),
        (name = "access", description = "Credentials for protected files"),
        (name = "content", description = "The files themselves, by path or by hash"),
        (name = "server", description = "Health and this document"),
    ),
)]
pub struct ApiDoc;

/// The auth schemes. A read needs a files token (`token` or `bearer`); a write needs a files
/// token and an access token (`access_token` or `x_access_token`).
struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let c = openapi.components.get_or_insert_with(Default::default);
        let key = |name: &str, what: &str| ApiKeyValue::with_description(name, what);
        c.add_security_scheme(
            "token",
            SecurityScheme::ApiKey(ApiKey::Query(key(
                "token",
                "A files token (read). Search and `GET /api/files` also take a short-lived \
                 file token from `POST /api/files/token`, which sees no protected file.",
            ))),
        );
        c.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A files token (read); `Token <t>` works too"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "access_token",
            SecurityScheme::ApiKey(ApiKey::Query(key(
                "access_token",
                "An access token (write), together with a files token",
            ))),
        );
        c.add_security_scheme(
            "x_access_token",
            SecurityScheme::ApiKey(ApiKey::Header(key(
                "X-Access-Token",
                "An access token (write), together with a files token",
            ))),
        );
    }
}

/// Every error: `{"http_status_code": 404, "message": "File not found", "code": "file-not-found"}`.
#[derive(ToSchema)]
pub struct Error {
    /// The HTTP status, repeated.
    pub http_status_code: u16,
    /// What went wrong, for a person.
    pub message: String,
    /// A stable kebab-case code, for a program: `file-not-found`, `invalid-path`, …
    pub code: String,
}

/// A file: its meta (the server's fields and the editors' own, kept verbatim) plus fields
/// computed from its path and hash.
#[derive(ToSchema, Serialize)]
pub struct FileObject {
    /// Relative to `uploads/`.
    pub path: String,
    pub filename: String,
    /// The name without its last extension.
    pub basename: String,
    /// The last extension, without the dot; `""` when there is none.
    pub extension: String,
    /// The folder, relative to `uploads/`; `""` at the top.
    pub dirname: String,
    /// `project/uploads/<path>`, each segment percent-encoded.
    pub url: String,
    /// `url` on config `url` (else the request's scheme and host).
    pub full_url: String,
    /// The immutable URL of the content: `<base>/media/<hash>.<ext>`.
    pub hash_url: Option<String>,
    /// BLAKE3 of the content, 64 lowercase hex.
    pub hash: Option<String>,
    /// Stable id (UUID v7), kept across moves, new on copy.
    pub uuid: Option<String>,
    /// MIME type, sniffed from the content.
    pub r#type: Option<String>,
    /// Bytes.
    pub filesize: Option<u64>,
    /// Unix seconds when the file entered the library.
    pub uploaded_on: Option<f64>,
    /// The file's mtime when `hash` was computed.
    pub modified_on: Option<f64>,
    /// EXIF facts (empty for non-images).
    pub exif: Option<BTreeMap<String, Value>>,
    /// An editor's field (default: from the file name); any value.
    pub title: Option<Value>,
    /// An editor's field (default `""`); any value.
    pub description: Option<Value>,
    /// The editors' own fields, kept verbatim.
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

/// `{"data": <file>}`.
#[derive(ToSchema)]
pub struct FileData {
    pub data: FileObject,
}

/// One uploaded file, or (several files sent) an array of them.
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum Uploaded {
    One(Box<FileObject>),
    Many(Vec<FileObject>),
}

/// `{"data": …}` of an upload.
#[derive(ToSchema)]
pub struct UploadData {
    pub data: Uploaded,
}

/// What `GET /api/files` answers: a file, a folder's files keyed by name (by relative path
/// when recursive), or every file with a hash.
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FilesList {
    File(Box<FileObject>),
    Folder(BTreeMap<String, FileObject>),
    ByHash(Vec<FileObject>),
}

/// `{"data": …}` of `GET /api/files`.
#[derive(ToSchema)]
pub struct FilesData {
    pub data: FilesList,
}

/// A folder.
#[derive(ToSchema, Serialize)]
pub struct FolderObject {
    pub path: String,
    pub name: String,
    pub url: String,
    pub full_url: String,
    /// Names of the files directly in it.
    pub files: Vec<String>,
    /// Names of the folders directly in it.
    pub folders: Vec<String>,
}

/// `{"data": <folder>}`.
#[derive(ToSchema)]
pub struct FolderData {
    pub data: FolderObject,
}

/// A folder, or (`collection=true`) its sub-folders keyed by name.
#[derive(ToSchema, Serialize)]
#[serde(untagged)]
#[allow(dead_code)]
pub enum FoldersList {
    Folder(FolderObject),
    Folders(BTreeMap<String, FolderObject>),
}

/// `{"data": …}` of `GET /api/folders`.
#[derive(ToSchema)]
pub struct FoldersData {
    pub data: FoldersList,
}

/// A page of search hits and how many there are in all.
#[derive(ToSchema)]
pub struct SearchResult {
    pub data: Vec<FileObject>,
    pub total: u64,
}

/// A short-lived file token, for `?token=` on protected files.
#[derive(ToSchema)]
pub struct FileToken {
    pub token: String,
}

/// Signed URLs, in the order asked.
#[derive(ToSchema)]
pub struct SignedUrls {
    pub items: Vec<SignedUrl>,
}

/// One signed URL: `path` or `hash` as asked.
#[derive(ToSchema, Serialize)]
pub struct SignedUrl {
    pub path: Option<String>,
    pub hash: Option<String>,
    pub url: String,
    /// RFC 3339, UTC.
    #[serde(rename = "expiresAt")]
    pub expires_at: String,
}

/// The server's state; no server paths.
#[derive(ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
    pub files_indexed: u64,
    pub reconcile: Reconcile,
    /// What needs a person's attention (invalid meta, removed orphans, …).
    pub problems: Vec<Problem>,
    pub thumbs: ThumbStats,
}

/// How far the start-up reconcile got.
#[derive(ToSchema)]
pub struct Reconcile {
    /// `running`, `done` or `failed`.
    pub state: String,
    pub files: Option<u64>,
    pub reindexed: Option<u64>,
    pub removed: Option<u64>,
    pub millis: Option<u64>,
}

#[derive(ToSchema)]
pub struct Problem {
    pub code: String,
    pub path: String,
    pub message: String,
}

#[derive(ToSchema)]
pub struct ThumbStats {
    pub generated: u64,
    pub cache_hits: u64,
    pub refused: u64,
    pub busy: u64,
    pub running: u64,
    pub cache_files: u64,
    pub cache_bytes: u64,
}

/// A file or folder named by its path.
#[derive(ToSchema)]
pub struct PathBody {
    /// Relative to `uploads/` (`id` is accepted too).
    #[schema(example = "movies/sg-2")]
    pub path: String,
}

/// A move or copy.
#[derive(ToSchema)]
pub struct MoveBody {
    #[schema(example = "docs/welcome.md")]
    pub path: String,
    #[schema(example = "docs/read-me-first.md")]
    pub new_path: String,
}

/// A meta field to update or add; `field` in dot notation for nested fields.
#[derive(ToSchema)]
pub struct MetaBody {
    #[schema(example = "logo.png")]
    pub path: String,
    #[schema(example = "alt")]
    pub field: String,
    /// Any JSON value.
    #[schema(example = "The flextype logo")]
    pub value: Value,
}

/// A meta field to delete.
#[derive(ToSchema)]
pub struct MetaFieldBody {
    #[schema(example = "logo.png")]
    pub path: String,
    #[schema(example = "description")]
    pub field: String,
}

/// `DELETE /api/folders`: a non-empty folder needs `recursive`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FolderDeleteQuery {
    /// The folder.
    pub path: String,
    /// Needed to delete a folder that is not empty.
    #[param(schema_with = flag)]
    #[param(schema_with = flag)]
    pub recursive: Option<bool>,
}

/// A multipart upload. Tokens go in headers, the query, or fields before the first file.
#[derive(ToSchema)]
pub struct UploadForm {
    /// One or more files.
    #[schema(value_type = Vec<String>, format = Binary)]
    pub file: Vec<Vec<u8>>,
    /// The target folder (default: the top).
    pub folder: Option<String>,
    /// Replace a file of the same name, keeping its editor fields.
    #[schema(schema_with = flag)]
    pub overwrite: Option<bool>,
    /// Take a numbered name (`cover-1.jpg`) when the name is taken.
    #[schema(schema_with = flag)]
    pub rename: Option<bool>,
}

/// The server fetches `url` into `folder`.
#[derive(ToSchema)]
pub struct FromUrlBody {
    /// `http` or `https`; private and local addresses are refused.
    pub url: String,
    pub folder: String,
    /// The file name (default: from the response or the URL).
    pub name: Option<String>,
    /// `GET` (default) or `POST`.
    pub method: Option<String>,
    /// Headers to send to the URL's host: an object of strings, or that object as JSON text.
    #[schema(schema_with = header_map)]
    pub headers: Option<BTreeMap<String, String>>,
    #[schema(schema_with = flag)]
    pub overwrite: Option<bool>,
    #[schema(schema_with = flag)]
    pub rename: Option<bool>,
}

/// Paths or hashes to sign (one of them).
#[derive(ToSchema)]
pub struct SignUrlsBody {
    /// Paths of files: a list, or one path.
    #[schema(schema_with = one_or_many, example = json!(["logo.png"]))]
    pub paths: Option<Vec<String>>,
    /// Content hashes: a list, or one hash.
    #[schema(schema_with = one_or_many)]
    pub hashes: Option<Vec<String>>,
    /// Seconds (default 3600, at least 1), capped by `tokens.max_signed_url_ttl_s`.
    #[schema(schema_with = count)]
    pub expires_in: Option<u64>,
}

/// `GET /api/files`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FilesQuery {
    /// A file or folder, relative to `uploads/` (`id` is accepted too).
    #[param(example = "movies/sg-1/cover.jpg")]
    pub path: Option<String>,
    /// Every file with this content (64 hex) instead of a path.
    pub hash: Option<String>,
    /// List the folder's files even when `path` is a file's name.
    #[param(schema_with = flag)]
    pub collection: Option<bool>,
    /// The files of every sub-folder too, keyed by relative path.
    #[param(schema_with = flag)]
    pub recursive: Option<bool>,
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// `GET /api/files/search`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct SearchQuery {
    /// Tantivy query syntax; `*` or empty = every file.
    #[param(example = "welcome")]
    pub q: Option<String>,
    /// Only under this folder (and its sub-folders).
    pub folder: Option<String>,
    /// A MIME type, or `image/*`.
    #[param(rename = "type")]
    pub mime: Option<String>,
    pub ext: Option<String>,
    pub tag: Option<String>,
    pub min_size: Option<u64>,
    pub max_size: Option<u64>,
    /// `uploaded_on` at least (Unix seconds).
    pub from: Option<i64>,
    /// `uploaded_on` at most (Unix seconds).
    pub to: Option<i64>,
    /// `field:asc|desc` (default: relevance, then `uploaded_on:desc`).
    pub sort: Option<String>,
    /// 1–1000, default 20.
    #[param(maximum = 1000)]
    pub limit: Option<u64>,
    pub offset: Option<u64>,
}

/// `GET /api/folders`.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct FoldersQuery {
    #[param(example = "movies")]
    pub path: Option<String>,
    #[param(schema_with = flag)]
    pub collection: Option<bool>,
    #[param(schema_with = flag)]
    pub recursive: Option<bool>,
}

/// Query parameters of a content URL.
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ContentQuery {
    /// PocketBase's grammar: `WxH`, `WxHt`, `WxHb`, `WxHf`, `0xH`, `Wx0`; only configured
    /// sizes of jpg, png, gif and webp are made, anything else gets the original.
    pub thumb: Option<String>,
    /// `1`, `t` or `true`: `Content-Disposition: attachment`.
    pub download: Option<String>,
    /// A file token, for a protected file.
    pub token: Option<String>,
    /// Unix seconds, with `sig`: a signed URL (read only for protected files).
    pub expires: Option<String>,
    /// The signature of a signed URL.
    pub sig: Option<String>,
}

/// The errors any authenticated API call may answer.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ApiErrors {
    /// A missing or malformed parameter, an invalid path (`invalid-path`), a malformed body.
    #[response(status = 400)]
    BadRequest(Error),
    /// No token, an unknown or disabled token (`token-missing`, `token-invalid`, …).
    #[response(status = 401)]
    Unauthorized(Error),
    /// A file or folder the server may not read on disk (`unreadable`); with a file token, a
    /// protected path (`file-protected`); upload from a URL turned off (`from-url-disabled`).
    #[response(status = 403)]
    Forbidden(Error),
    /// The token's `limit_calls` is spent.
    #[response(status = 429)]
    TooManyRequests(Error),
    /// Something failed on the server; the cause is logged, not sent.
    #[response(status = 500)]
    Internal(Error),
}

/// Bytes of any type.
#[derive(ToSchema)]
#[schema(value_type = String, format = Binary)]
pub struct Binary(#[allow(dead_code)] Vec<u8>);

/// A yes/no parameter as `Params::flag` reads it: a boolean, `0`/`1`, or (any case) `true`,
/// `yes`, `on`, `t`, `1` / `false`, `no`, `off`, `f`, `0`, `""`.
fn flag() -> Schema {
    // JSON Schema patterns have no case-insensitive flag: each letter becomes `[Xx]`.
    let any_case = |w: &str| {
        w.chars()
            .map(|c| match c.is_ascii_alphabetic() {
                true => format!("[{}{}]", c.to_ascii_uppercase(), c),
                false => c.to_string(),
            })
            .collect::<String>()
    };
    let words: Vec<String> = FLAG_YES
        .iter()
        .chain(&FLAG_NO)
        .map(|w| any_case(w))
        .collect();
    let word = format!("^(?:{})$", words.join("|"));
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::Boolean))
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .enum_values(Some([0, 1])),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some(word)),
        )
        .build()
        .into()
}

/// A count of seconds: a positive integer, or its decimal text (form bodies).
fn count() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(1)),
        )
        .item(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[0-9]+$")),
        )
        .build()
        .into()
}

/// A list of strings (1 to 1000), or one string.
fn one_or_many() -> Schema {
    AnyOfBuilder::new()
        .item(ObjectBuilder::new().schema_type(Type::String))
        .item(
            ArrayBuilder::new()
                .items(ObjectBuilder::new().schema_type(Type::String))
                .min_items(Some(1))
                .max_items(Some(1000)),
        )
        .build()
        .into()
}

/// Header names to string values, or that object as JSON text.
fn header_map() -> Schema {
    AnyOfBuilder::new()
        .item(
            ObjectBuilder::new()
                .schema_type(Type::Object)
                .additional_properties(Some(ObjectBuilder::new().schema_type(Type::String))),
        )
        .item(ObjectBuilder::new().schema_type(Type::String))
        .build()
        .into()
}

/// What a move or copy (of a file or a folder) may answer besides [`ApiErrors`].
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum MoveErrors {
    /// No such file or folder at `path`.
    #[response(status = 404)]
    NotFound(Error),
    /// Something exists at `new_path`.
    #[response(status = 409)]
    Conflict(Error),
    /// The body is too large.
    #[response(status = 413)]
    TooLarge(Error),
}

/// What a content URL (by path or by hash) may answer besides its 200.
#[derive(IntoResponses)]
#[allow(dead_code)]
pub enum ContentAnswers {
    /// The byte range(s) asked for.
    #[response(status = 206, content_type = "*/*")]
    Partial(Binary),
    /// Not modified (If-None-Match / If-Modified-Since).
    #[response(status = 304)]
    NotModified,
    /// The path is not a valid media path (`invalid-path`) or the hash is malformed.
    #[response(status = 400)]
    BadRequest(Error),
    /// Protected, and no valid file token or signature (`file-protected`,
    /// `signature-invalid`, …), or not readable by the server (`unreadable`).
    #[response(status = 403)]
    Forbidden(Error),
    /// No such file.
    #[response(status = 404)]
    NotFound(Error),
    /// If-Match / If-Unmodified-Since failed.
    #[response(status = 412)]
    PreconditionFailed,
    /// No range asked for is within the file.
    #[response(status = 416)]
    RangeNotSatisfiable(Error),
    /// Something failed on the server.
    #[response(status = 500)]
    Internal(Error),
    /// No thumbnail worker was free in time (`thumbnail-busy`, with Retry-After).
    #[response(status = 503)]
    Busy(Error),
}
