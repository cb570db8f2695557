//! `POST /api/files`: multipart upload of one or more files.
//!
//! Each file part streams to a staging file, hashed as it arrives; nothing is placed until the
//! whole request was read and every file passed the name, type and size rules. Tokens must be
//! sent in headers, the query, or as fields before the first file part, so an unauthenticated
//! client can never make the server store its bytes.
//!
//! Also the one path every stored upload takes ([`stage`], [`store`]): upload from a URL
//! feeds its fetched body through the same functions.

use actix_multipart::Multipart;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use serde_json::Value;

use super::objects::{base_url, data, file_object};
use super::params::{authenticate, Needs, Params};
use super::AppState;
use crate::error::ApiError;
use crate::library::{Conflict, Entry, LibraryError};
use crate::storage::paths::MediaPath;
use crate::storage::staging::{StageError, Staged, StagingWriter};

/// Largest text field read from a multipart body.
const MAX_FIELD: usize = 64 * 1024;
/// Largest sum of text fields in one request: they are read before authentication.
const MAX_FIELDS_TOTAL: usize = 256 * 1024;

fn stage_error(e: StageError) -> ApiError {
    match e {
        StageError::TooLarge(n) => LibraryError::TooLarge(n).into(),
        StageError::Io(e) => ApiError::unexpected(&e),
    }
}

/// Uploads one or more files (multipart). Every file passes the name, type and size rules
/// before any is placed.
#[utoipa::path(
    post, path = "/api/files", operation_id = "uploadFiles", tag = "files",
    request_body(content = crate::api::openapi::UploadForm, content_type = "multipart/form-data"),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The new file (an array when several were sent)", body = crate::api::openapi::UploadData),
        (status = 409, description = "The name is taken (without `overwrite` or `rename`)", body = crate::api::openapi::Error),
        (status = 413, description = "A file is larger than `media.max_file_size`", body = crate::api::openapi::Error),
        (status = 415, description = "The type is not accepted, or the content contradicts the name", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    mut body: Multipart,
) -> Result<HttpResponse, ApiError> {
    let mut params = Params::from_query(req.query_string())?;
    let mut authed = false;
    let mut text_total = 0usize;
    let mut staged: Vec<(String, Staged)> = Vec::new();
    while let Some(field) = body.next().await {
        let mut field = field?;
        let name = field.name().unwrap_or("").to_string();
        let filename = field
            .content_disposition()
            .and_then(|cd| cd.get_filename())
            .map(str::to_string);
        let Some(filename) = filename else {
            let mut text = Vec::new();
            while let Some(chunk) = field.next().await {
                text.extend_from_slice(&chunk?);
                if text.len() > MAX_FIELD {
                    return Err(ApiError::bad_request(
                        "field-too-large",
                        format!("Field `{name}` is too large"),
                    ));
                }
            }
            text_total += text.len();
            if text_total > MAX_FIELDS_TOTAL {
                return Err(ApiError::bad_request(
                    "field-too-large",
                    "The text fields of this request are too large",
                ));
            }
            let text = String::from_utf8(text).map_err(|_| {
                ApiError::bad_request("bad-multipart", format!("Field `{name}` is not UTF-8"))
            })?;
            params.0.insert(name, Value::String(text));
            continue;
        };
        if !authed {
            authenticate(&state, &params, req.headers(), Needs::Write)?;
            authed = true;
        }
        if name != "file" && name != "file[]" && name != "files" && name != "files[]" {
            return Err(ApiError::bad_request(
                "bad-multipart",
                format!("Unexpected file field `{name}`; use `file`"),
            ));
        }
        if filename.trim().is_empty() {
            return Err(ApiError::bad_request(
                "missing-filename",
                "A file part has no file name",
            ));
        }
        staged.push((filename, stage(&state, field).await?));
    }
    if !authed {
        authenticate(&state, &params, req.headers(), Needs::Write)?;
    }
    if staged.is_empty() {
        return Err(ApiError::missing_param("file"));
    }
    let folder = MediaPath::parse(&params.required_str("folder")?)?;
    let conflict = conflict_mode(&params)?;
    let base = base_url(&state.config, &req);
    let mut placed: Vec<Value> = store(&state, &folder, conflict, staged)
        .await?
        .iter()
        .map(|entry| file_object(entry, &base))
        .collect();
    let body = if placed.len() == 1 {
        placed.remove(0)
    } else {
        Value::Array(placed)
    };
    Ok(HttpResponse::Ok().json(data(body)))
}

/// What to do when a name is taken: `overwrite`, `rename`, or refuse (409).
pub(super) fn conflict_mode(params: &Params) -> Result<Conflict, ApiError> {
    match (params.flag("overwrite")?, params.flag("rename")?) {
        (true, true) => Err(ApiError::bad_request(
            "invalid-parameter",
            "`overwrite` and `rename` exclude each other",
        )),
        (true, false) => Ok(Conflict::Overwrite),
        (false, true) => Ok(Conflict::Rename),
        (false, false) => Ok(Conflict::Refuse),
    }
}

/// Streams one incoming file to a staging file, hashed as it arrives; over
/// `media.max_file_size` it stops with a 413 and the staging file is removed.
pub(super) async fn stage<S, E>(state: &AppState, mut chunks: S) -> Result<Staged, ApiError>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    ApiError: From<E>,
{
    let limit = state.config.media.max_file_size;
    let mut writer = StagingWriter::create(&state.library.layout().staging, limit)
        .map_err(|e| ApiError::unexpected(&e))?;
    while let Some(chunk) = chunks.next().await {
        writer.write(chunk?).await.map_err(stage_error)?;
    }
    writer.finish().await.map_err(stage_error)
}

/// Checks every staged file (raw name, content) against the name, type and content rules,
/// then places them all in `folder`, or none: a failure removes what this call placed.
pub(super) async fn store(
    state: &AppState,
    folder: &MediaPath,
    conflict: Conflict,
    staged: Vec<(String, Staged)>,
) -> Result<Vec<Entry>, ApiError> {
    let mut checked = Vec::with_capacity(staged.len());
    for (raw, file) in staged {
        let (name, mime) = state.library.check_upload(&raw, &file.head)?;
        if conflict != Conflict::Rename && checked.iter().any(|(n, _, _)| n == &name) {
            return Err(LibraryError::FileExists(name).into());
        }
        checked.push((name, mime, file));
    }
    let mut placed = Vec::with_capacity(checked.len());
    let mut created = Vec::new();
    for (name, mime, file) in checked {
        let existed = state
            .library
            .layout()
            .file(&folder.join(&name)?)
            .is_ok_and(|p| p.exists());
        match state
            .library
            .ingest(file, folder, &name, mime, conflict)
            .await
        {
            Ok(entry) => {
                if !existed || conflict == Conflict::Rename {
                    created.push(entry.path.clone());
                }
                placed.push(entry);
            }
            Err(e) => {
                // Undo what this request created so a failed call leaves nothing behind.
                for p in created {
                    let _ = state.library.delete_file(&p).await;
                }
                return Err(e.into());
            }
        }
    }
    Ok(placed)
}
