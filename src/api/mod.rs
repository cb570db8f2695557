//! The HTTP surface: one module per resource, composed into one route table here.
//!
//! Handlers extract parsed input, call the library, and map the result; they hold no state of
//! their own and never touch the filesystem directly.

pub mod access;
pub mod files;
pub mod folders;
pub mod from_url;
pub mod health;
pub mod meta;
pub mod objects;
pub mod openapi;
pub mod params;
pub mod ranges;
pub mod search;
pub mod serve;
pub mod upload;

use std::sync::Arc;

use actix_web::{web, HttpRequest};

use crate::auth::TokenStore;
use crate::config::Config;
use crate::error::ApiError;
use crate::indexer::Indexer;
use crate::library::Library;
use crate::signing::Signer;
use crate::thumbs::Thumbs;

/// What every handler shares.
pub struct AppState {
    pub library: Library,
    pub indexer: Indexer,
    pub tokens: Arc<TokenStore>,
    pub config: Arc<Config>,
    pub hot: serve::HotCache,
    pub signer: Arc<Signer>,
    pub thumbs: Thumbs,
}

pub fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::unexpected(&std::io::Error::other("application state missing")))
}

/// The whole route table.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(params::MAX_BODY))
        .service(
            web::scope("/api")
                // Fixed paths under /files go before any pattern that could match them.
                .configure(from_url::configure)
                .configure(access::configure)
                .configure(meta::configure)
                .configure(files::configure)
                .configure(search::configure)
                .configure(folders::configure)
                .configure(health::configure)
                .configure(openapi::configure)
                .default_service(web::to(not_found)),
        )
        .configure(serve::configure)
        .default_service(web::to(not_found));
}

/// A resource whose unmatched methods answer with a JSON 405.
pub fn resource(path: &str) -> actix_web::Resource {
    web::resource(path).default_service(web::to(method_not_allowed))
}

async fn method_not_allowed(req: HttpRequest) -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::method_not_allowed(
        openapi::allowed_methods(req.path()),
        "Method not allowed on this route",
    ))
}

async fn not_found() -> Result<actix_web::HttpResponse, ApiError> {
    Err(ApiError::not_found("route-not-found", "No such route"))
}
