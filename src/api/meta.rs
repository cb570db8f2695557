//! `/api/files/meta`: update, add and delete meta fields (dot notation for nested ones).

use actix_web::{web, HttpRequest, HttpResponse};

use super::objects::{base_url, data, file_object};
use super::params::{Params, WriteRequest};
use super::AppState;
use crate::error::ApiError;
use crate::library::MetaEdit;
use crate::storage::meta::from_json;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        super::resource("/files/meta")
            .route(web::patch().to(update))
            .route(web::post().to(add))
            .route(web::delete().to(remove)),
    );
}

fn value(params: &Params) -> Result<serde_yaml::Value, ApiError> {
    params
        .value("value")
        .map(from_json)
        .ok_or_else(|| ApiError::missing_param("value"))
}

async fn edit(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
    op: fn(String, &Params) -> Result<MetaEdit, ApiError>,
) -> Result<HttpResponse, ApiError> {
    let path = r.params.path()?;
    let field = r.params.required_str("field")?;
    let entry = state
        .library
        .edit_meta(&path, op(field, &r.params)?)
        .await?;
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

/// Updates an existing meta field (dot notation for nested fields).
#[utoipa::path(
    patch, path = "/api/files/meta", operation_id = "updateMeta", tag = "files",
    request_body(content(
        (crate::api::openapi::MetaBody = "application/json"),
        (crate::api::openapi::MetaBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The file with its new meta", body = crate::api::openapi::FileData),
        (status = 404, description = "No such file, or no such field", body = crate::api::openapi::Error),
        (status = 413, description = "The body is too large, or the edit would make the meta larger than the server reads back (`meta-too-large`)", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, p| Ok(MetaEdit::Update(f, value(p)?))).await
}

/// Adds a meta field (dot notation for nested fields).
#[utoipa::path(
    post, path = "/api/files/meta", operation_id = "addMeta", tag = "files",
    request_body(content(
        (crate::api::openapi::MetaBody = "application/json"),
        (crate::api::openapi::MetaBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The file with its new meta", body = crate::api::openapi::FileData),
        (status = 404, description = "No such file", body = crate::api::openapi::Error),
        (status = 409, description = "The field exists", body = crate::api::openapi::Error),
        (status = 413, description = "The body is too large, or the edit would make the meta larger than the server reads back (`meta-too-large`)", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, p| Ok(MetaEdit::Add(f, value(p)?))).await
}

/// Deletes a meta field (dot notation for nested fields).
#[utoipa::path(
    delete, path = "/api/files/meta", operation_id = "deleteMeta", tag = "files",
    params(
        ("path" = String, Query, description = "The file"),
        ("field" = String, Query, description = "The field, dot notation for nested ones"),
    ),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The file with its new meta", body = crate::api::openapi::FileData),
        (status = 404, description = "No such file, or no such field", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, _| Ok(MetaEdit::Delete(f))).await
}
