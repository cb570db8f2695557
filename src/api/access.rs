//! Credentials for protected files: `POST /api/files/token` issues a short-lived file token
//! (PocketBase), `POST /api/files/sign-urls` signs URLs of paths or hashes (Fibery).
//!
//! Both need a files token. The signing itself is `crate::signing`'s; this module checks the
//! request, caps the lifetimes and builds the URLs.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use super::objects::{base_url, full_url, hash_url};
use super::params::{Params, ReadRequest};
use super::AppState;
use crate::auth::TokenStore;
use crate::error::ApiError;
use crate::hashing::ContentHash;
use crate::library::LibraryError;
use crate::signing::{now_secs, rfc3339, Target};
use crate::storage::paths::MediaPath;

/// Signed URLs made by one call at most.
const MAX_ITEMS: usize = 1_000;
/// `expires_in` when the call does not say.
const DEFAULT_EXPIRES_IN: u64 = 3_600;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/files/token").route(web::post().to(file_token)))
        .service(super::resource("/files/sign-urls").route(web::post().to(sign_urls)));
}

/// A file token bound to the files token that asked for it: disabling or revoking that one
/// ends its file tokens, and API calls made with them count against its limit.
#[utoipa::path(
    post, path = "/api/files/token", operation_id = "createFileToken", tag = "access",
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "A file token, valid `tokens.file_token_ttl_s`", body = crate::api::openapi::FileToken),
        (status = 413, description = "The body is too large", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn file_token(state: web::Data<AppState>, r: ReadRequest) -> Result<HttpResponse, ApiError> {
    let expires = now_secs().saturating_add(state.config.tokens.file_token_ttl_s);
    let issuer = TokenStore::reference(r.principal.files_token.as_deref().unwrap_or_default());
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "token": state.signer.file_token(expires, &issuer) })))
}

/// Signs URLs of files (by path) or of content (by hash).
#[utoipa::path(
    post, path = "/api/files/sign-urls", operation_id = "signUrls", tag = "access",
    request_body(content(
        (crate::api::openapi::SignUrlsBody = "application/json"),
        (crate::api::openapi::SignUrlsBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "One signed URL per path or hash", body = crate::api::openapi::SignedUrls),
        (status = 404, description = "A path that is not a file, or an unknown hash", body = crate::api::openapi::Error),
        (status = 413, description = "The body is too large", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn sign_urls(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: ReadRequest,
) -> Result<HttpResponse, ApiError> {
    let expires_in = r.params.u64("expires_in")?.unwrap_or(DEFAULT_EXPIRES_IN);
    if expires_in == 0 {
        return Err(ApiError::bad_request(
            "invalid-parameter",
            "`expires_in` must be at least 1 second",
        ));
    }
    let expires =
        now_secs().saturating_add(expires_in.min(state.config.tokens.max_signed_url_ttl_s));
    let expires_at = rfc3339(expires);
    let base = base_url(&state.config, &req);
    let mut items = Vec::new();
    match (list(&r.params, "paths")?, list(&r.params, "hashes")?) {
        (Some(paths), None) => {
            for raw in paths {
                let p = MediaPath::parse(&raw)?;
                // Every path must be a file now: a URL for nothing is a client's mistake.
                match state.library.file(&p).await {
                    Err(LibraryError::NotAFile) => return Err(LibraryError::FileNotFound.into()),
                    other => other?,
                };
                let sig = state.signer.sign(Target::Path(p.as_str()), expires);
                items.push(json!({
                    "path": p.as_str(),
                    "url": format!("{}?expires={expires}&sig={sig}", full_url(&base, &p)),
                    "expiresAt": expires_at,
                }));
            }
        }
        (None, Some(hashes)) => {
            for raw in hashes {
                let hash: ContentHash = raw.parse()?;
                let hex = hash.to_hex();
                let entries = state.library.by_hash(&hex).await?;
                let Some(entry) = entries.first() else {
                    return Err(LibraryError::HashNotFound.into());
                };
                let url = hash_url(&base, &hex, entry.path.name());
                let sig = state.signer.sign(Target::Hash(&hex), expires);
                items.push(json!({
                    "hash": hex,
                    "url": format!("{url}?expires={expires}&sig={sig}"),
                    "expiresAt": expires_at,
                }));
            }
        }
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "invalid-parameter",
                "Send `paths` or `hashes`, not both",
            ))
        }
        (None, None) => return Err(ApiError::missing_param("paths")),
    }
    Ok(HttpResponse::Ok()
        .insert_header(("Cache-Control", "no-store"))
        .json(json!({ "items": items })))
}

/// A list parameter: a JSON array of strings, or (from a query or form) one string, which is
/// one value (names may hold commas). Empty lists and more than [`MAX_ITEMS`] values are
/// refused.
fn list(params: &Params, key: &str) -> Result<Option<Vec<String>>, ApiError> {
    let bad = |why: &str| ApiError::bad_request("invalid-parameter", format!("`{key}` {why}"));
    let values: Vec<String> = match params.value(key) {
        None => return Ok(None),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<_>>()
            .ok_or_else(|| bad("must be a list of strings"))?,
        Some(Value::String(s)) => vec![s.clone()],
        Some(_) => return Err(bad("must be a list of strings")),
    };
    if values.is_empty() || values.iter().all(String::is_empty) {
        return Err(bad("must not be empty"));
    }
    if values.len() > MAX_ITEMS {
        return Err(bad(&format!("may hold at most {MAX_ITEMS} values")));
    }
    Ok(Some(values))
}
