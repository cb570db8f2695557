//! `/api/health`: whether the server is up and how far the start-up scan got. No token needed.

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/health").route(web::get().to(health)));
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "files_indexed": state.library.indexed_files(),
        "reconcile": if state.library.is_scanned() { "done" } else { "running" },
        "problems": [],
    }))
}
