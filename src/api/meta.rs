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

async fn update(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, p| Ok(MetaEdit::Update(f, value(p)?))).await
}

async fn add(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, p| Ok(MetaEdit::Add(f, value(p)?))).await
}

async fn remove(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    edit(req, state, r, |f, _| Ok(MetaEdit::Delete(f))).await
}
