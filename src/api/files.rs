//! `/api/files`: fetch, move, copy and delete files.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::objects::{base_url, data, file_object};
use super::params::{BrowseRequest, WriteRequest};
use super::AppState;
use crate::error::ApiError;
use crate::hashing::ContentHash;
use crate::library::LibraryError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/files")
            .route(web::get().to(fetch))
            .route(web::post().to(super::upload::upload))
            .route(web::put().to(move_file))
            .route(web::delete().to(delete_file)),
    )
    .service(super::resource("/files/copy").route(web::put().to(copy_file)));
}

/// A file, a folder's files keyed by name, or every file with a given hash. A caller holding
/// only a file token sees no protected file: a protected path answers 403 (whether it exists
/// or not) and listings leave protected files out.
#[utoipa::path(
    get, path = "/api/files", operation_id = "getFiles", tag = "files",
    params(crate::api::openapi::FilesQuery),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "A file, a folder's files keyed by name, or every file with the hash", body = crate::api::openapi::FilesData),
        (status = 404, description = "No such file or folder, or no file with the hash", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: BrowseRequest,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state.config, &req);
    let lib = &state.library;
    let protection = lib.protection();
    let visible =
        |e: &crate::library::Entry| r.principal.sees_protected() || !lib.protection_of(e).protected;
    // Every parameter is read before any is acted on, so a bad one is refused whatever path
    // the call takes.
    let collection = r.params.flag("collection")?;
    let recursive = r.params.flag("recursive")?;
    let offset = r.params.usize("offset")?.unwrap_or(0);
    let limit = r.params.usize("limit")?;
    if let Some(hash) = r.params.str("hash")? {
        let hash: ContentHash = hash.parse()?;
        let mut entries = lib.by_hash(&hash.to_hex()).await?;
        entries.retain(|e| visible(e));
        if entries.is_empty() {
            return Err(LibraryError::HashNotFound.into());
        }
        let list = entries.iter().map(|e| file_object(e, &base)).collect();
        return Ok(HttpResponse::Ok().json(data(Value::Array(list))));
    }
    let path = r.params.path()?;
    if !r.principal.sees_protected() && protection.path_protected(&path) {
        return Err(ApiError::protected());
    }
    if !collection && !recursive {
        match lib.file(&path).await {
            Ok(entry) if !visible(&entry) => return Err(ApiError::protected()),
            Ok(entry) => return Ok(HttpResponse::Ok().json(data(file_object(&entry, &base)))),
            Err(LibraryError::NotAFile) => {}
            Err(e) => return Err(e.into()),
        }
    }
    // Paging counts visible files only: for a file token, protected ones are left out first.
    let page = match r.principal.sees_protected() {
        true => (offset, limit),
        false => (0, None),
    };
    let entries = match lib.list(&path, recursive, page.0, page.1).await {
        Err(LibraryError::FolderNotFound) => return Err(LibraryError::FileNotFound.into()),
        other => other?,
    };
    let visible_page = entries
        .iter()
        .filter(|e| visible(e))
        .skip(offset - page.0)
        .take(limit.filter(|_| page.1.is_none()).unwrap_or(usize::MAX));
    let map: Map<String, Value> = visible_page
        .map(|e| {
            let key = e
                .path
                .relative_to(&path)
                .unwrap_or(e.path.as_str())
                .to_string();
            (key, file_object(e, &base))
        })
        .collect();
    Ok(HttpResponse::Ok().json(data(Value::Object(map))))
}

/// Moves or renames a file with its meta (the uuid is kept); missing parents are created.
#[utoipa::path(
    put, path = "/api/files", operation_id = "moveFile", tag = "files",
    request_body(content(
        (crate::api::openapi::MoveBody = "application/json"),
        (crate::api::openapi::MoveBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The file at its new path", body = crate::api::openapi::FileData),
        crate::api::openapi::MoveErrors,
        crate::api::openapi::ApiErrors,
    ),
)]
async fn move_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let entry = state.library.move_file(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

/// Copies a file with its meta; the copy gets a new uuid.
#[utoipa::path(
    put, path = "/api/files/copy", operation_id = "copyFile", tag = "files",
    request_body(content(
        (crate::api::openapi::MoveBody = "application/json"),
        (crate::api::openapi::MoveBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The copy", body = crate::api::openapi::FileData),
        crate::api::openapi::MoveErrors,
        crate::api::openapi::ApiErrors,
    ),
)]
async fn copy_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let entry = state.library.copy_file(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

/// Deletes a file and its meta.
#[utoipa::path(
    delete, path = "/api/files", operation_id = "deleteFile", tag = "files",
    params(("path" = String, Query, description = "The file, relative to `uploads/` (`id` is accepted too)", example = "docs/welcome.md")),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 204, description = "The file and its meta are gone"),
        (status = 404, description = "No such file", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn delete_file(
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    state.library.delete_file(&r.params.path()?).await?;
    Ok(HttpResponse::NoContent().finish())
}
