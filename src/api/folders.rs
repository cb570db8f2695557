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
async fn fetch(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: ReadRequest,
) -> Result<HttpResponse, ApiError> {
    let base = base_url(&state.config, &req);
    let path = r.params.path()?;
    if !r.params.flag("collection") {
        let info = state.library.folder(&path).await?;
        return Ok(HttpResponse::Ok().json(data(folder_object(&info, &base))));
    }
    let subs = state
        .library
        .subfolders(&path, r.params.flag("recursive"))
        .await?;
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

async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let info = state.library.create_folder(&r.params.path()?).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

async fn rename(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let info = state.library.move_folder(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

async fn copy(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    let (from, to) = (r.params.path()?, r.params.media_path("new_path")?);
    let info = state.library.copy_folder(&from, &to).await?;
    Ok(HttpResponse::Ok().json(data(folder_object(&info, &base_url(&state.config, &req)))))
}

async fn delete(state: web::Data<AppState>, r: WriteRequest) -> Result<HttpResponse, ApiError> {
    state
        .library
        .delete_folder(&r.params.path()?, r.params.flag("recursive"))
        .await?;
    Ok(HttpResponse::NoContent().finish())
}
