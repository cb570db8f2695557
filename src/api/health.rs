//! `/api/health`: whether the server is up, how far the start-up reconcile got, and what needs
//! a person's attention. No token needed, and no server paths in the answer.

use actix_web::{web, HttpResponse};
use serde_json::{json, Value};

use super::AppState;
use crate::indexer::ReconcileState;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/health").route(web::get().to(health)));
}

/// Whether the server is up, the reconcile's progress, and what needs attention. No token.
#[utoipa::path(
    get, path = "/api/health", operation_id = "health", tag = "server",
    responses((status = 200, description = "The server's state", body = crate::api::openapi::Health)),
)]
async fn health(state: web::Data<AppState>) -> HttpResponse {
    let reconcile = match state.indexer.reconcile_state() {
        ReconcileState::Running => json!({ "state": "running" }),
        ReconcileState::Done {
            files,
            reindexed,
            removed,
            millis,
        } => json!({
            "state": "done", "files": files, "reindexed": reindexed,
            "removed": removed, "millis": millis,
        }),
        ReconcileState::Failed(_) => json!({ "state": "failed" }),
    };
    let problems: Vec<Value> = state
        .library
        .problems()
        .into_iter()
        .map(|p| json!({ "code": p.code, "path": p.path, "message": p.message }))
        .collect();
    HttpResponse::Ok().json(json!({
        "status": "ok",
        "files_indexed": state.indexer.index().count(),
        "reconcile": reconcile,
        "problems": problems,
        "thumbs": state.thumbs.stats(),
    }))
}
