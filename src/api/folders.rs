//! `/api/folders`: fetch, create, move, copy and delete folders with their `.meta` twins.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::objects::{base_url, data, folder_object};
use super::params::{ReadRequest, WriteRequest};
use super::AppState;
use crate::error::ApiError;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/folders")
            .route(web::get().to(fetch))
            .route(web::post().to(create))
            .route(web::put().to(rename))
            .route(web::delete().to(delete)),
    )
    .service(super::resource("/folders/copy").route(web::put().to(copy)));
}

/// A folder, or with `collection=true` its sub-folders keyed by name (by relative path when
/// `recursive=true`).
#[utoipa::path(
    get, path = "/api/folders", operation_id = "getFolders", tag = "folders",
    params(crate::api::openapi::FoldersQuery),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "A folder, or its sub-folders keyed by name", body = crate::api::openapi::FoldersData),
        (status = 404, description = "No such folder", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: ReadRequest,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state.config, &req);
    let path = r.params.path()?;
    // Every parameter is read before any is acted on, so a bad one is refused whatever path
    // the call takes.
    let (collection, recursive) = (r.params.flag("collection")?, r.params.flag("recursive")?);
    if !collection {
        let info = state.library.folder(&path).await?;
        return Ok(HttpResponse::Ok().json(data(folder_object(&info, &base))));
    }
    let subs = state.library.subfolders(&path, recursive).await?;
    let map: Map<String, Value> = subs
        .iter()
        .map(|f| {
            let key = f
                .path
                .relative_to(&path)
                .unwrap_or(f.path.as_str())
                .to_string();
            (key, folder_object(f, &base))
        })
        .collect();
    Ok(HttpResponse::Ok().json(data(Value::Object(map))))
}

/// Creates a folder (and missing parents).
#[utoipa::path(
    post, path = "/api/folders", operation_id = "createFolder", tag = "folders",
    request_body(content(
        (crate::api::openapi::PathBody = "application/json"),
        (crate::api::openapi::PathBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The new folder", body = crate::api::openapi::FolderData),
        (status = 409, description = "The folder exists", body = crate::api::openapi::Error),
        (status = 413, description = "The body is too large", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let info = state.library.create_folder(&r.params.path()?).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

/// Moves or renames a folder with its `.meta` twin.
#[utoipa::path(
    put, path = "/api/folders", operation_id = "moveFolder", tag = "folders",
    request_body(content(
        (crate::api::openapi::MoveBody = "application/json"),
        (crate::api::openapi::MoveBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The folder at its new path", body = crate::api::openapi::FolderData),
        crate::api::openapi::MoveErrors,
        crate::api::openapi::ApiErrors,
    ),
)]
async fn rename(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let info = state.library.move_folder(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

/// Copies a folder with its `.meta` twin.
#[utoipa::path(
    put, path = "/api/folders/copy", operation_id = "copyFolder", tag = "folders",
    request_body(content(
        (crate::api::openapi::MoveBody = "application/json"),
        (crate::api::openapi::MoveBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The folder at its new path", body = crate::api::openapi::FolderData),
        crate::api::openapi::MoveErrors,
        crate::api::openapi::ApiErrors,
    ),
)]
async fn copy(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let info = state.library.copy_folder(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

/// Deletes a folder with its `.meta` twin.
#[utoipa::path(
    delete, path = "/api/folders", operation_id = "deleteFolder", tag = "folders",
    params(crate::api::openapi::FolderDeleteQuery),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 204, description = "The folder and its `.meta` twin are gone"),
        (status = 404, description = "No such folder", body = crate::api::openapi::Error),
        (status = 409, description = "The folder is not empty (without `recursive`)", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn delete(state: web::Data<AppState>, r: WriteRequest) -> Result<HttpResponse, ApiError> {
    state
        .library
        .delete_folder(&r.params.path()?, r.params.flag("recursive")?)
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
