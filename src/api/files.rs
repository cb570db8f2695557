//! `/api/files`: fetch, move, copy and delete files.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::objects::{base_url, data, file_object};
use super::params::{ReadRequest, WriteRequest};
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

/// A file, a folder's files keyed by name, or every file with a given hash.
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: ReadRequest,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state.config, &req);
    let lib = &state.library;
    if let Some(hash) = r.params.str("hash") {
        let hash: ContentHash = hash.parse().map_err(|e: crate::hashing::BadHash| {
            ApiError::bad_request("invalid-hash", e.to_string())
        })?;
        let entries = lib.by_hash(&hash.to_hex()).await?;
        if entries.is_empty() {
            return Err(LibraryError::HashNotFound.into());
        }
        let list = entries.iter().map(|e| file_object(e, &base)).collect();
        return Ok(HttpResponse::Ok().json(data(Value::Array(list))));
    }
    let path = r.params.path()?;
    let collection = r.params.flag("collection");
    let recursive = r.params.flag("recursive");
    if !collection && !recursive {
        match lib.file(&path).await {
            Ok(entry) => return Ok(HttpResponse::Ok().json(data(file_object(&entry, &base)))),
            Err(LibraryError::NotAFile) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let offset = r.params.usize("offset")?.unwrap_or(0);
    let limit = r.params.usize("limit")?;
    let entries = match lib.list(&path, recursive, offset, limit).await {
        Err(LibraryError::FolderNotFound) => return Err(LibraryError::FileNotFound.into()),
        other => other?,
    };
    let map: Map<String, Value> = entries
        .iter()
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

async fn move_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let entry = state.library.move_file(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

async fn copy_file(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let entry = state.library.copy_file(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

async fn delete_file(
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    state.library.delete_file(&r.params.path()?).await?;
    Ok(HttpResponse::NoContent().finish())
}
