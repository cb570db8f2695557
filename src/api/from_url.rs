//! `POST /api/files/from-url`: the server fetches a URL into the library (Fibery's "upload
//! from the web").
//!
//! Parses the call (`url`, `method`, `headers`, `name`, `folder`, `overwrite`, `rename`),
//! lets `remote` fetch behind its SSRF guard, and feeds the body through the upload path
//! (`upload::stage`, `upload::store`), so names, types, sniffing, size and conflicts follow
//! the same rules as a multipart upload and a failure stores nothing. Every parameter is
//! checked before anything is fetched.

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{Map, Value};

use super::objects::{base_url, data, file_object};
use super::params::{Params, WriteRequest};
use super::upload::{conflict_mode, stage, store};
use super::AppState;
use crate::error::ApiError;
use crate::library::names;
use crate::remote::{naming, Fetched, Fetcher, RemoteRequest};
use crate::storage::paths::MediaPath;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/files/from-url").route(web::post().to(from_url)));
}

/// The server fetches a URL into a folder, behind its SSRF guard; answers as an upload.
#[utoipa::path(
    post, path = "/api/files/from-url", operation_id = "uploadFromUrl", tag = "files",
    request_body(content(
        (crate::api::openapi::FromUrlBody = "application/json"),
        (crate::api::openapi::FromUrlBody = "application/x-www-form-urlencoded"),
    )),
    security(("bearer" = [], "x_access_token" = []), ("token" = [], "access_token" = [])),
    responses(
        (status = 200, description = "The stored file", body = crate::api::openapi::FileData),
        (status = 409, description = "The name is taken (without `overwrite` or `rename`)", body = crate::api::openapi::Error),
        (status = 413, description = "The fetched body, or this request's, is too large", body = crate::api::openapi::Error),
        (status = 415, description = "The type is not accepted, or the content contradicts the name", body = crate::api::openapi::Error),
        (status = 502, description = "The URL's host failed, timed out, or redirected too often", body = crate::api::openapi::Error),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn from_url(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: WriteRequest,
) -> Result<HttpResponse, ApiError> {
    if !state.config.media.from_url.enabled {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "from-url-disabled",
            "Upload from a URL is turned off on this server (media.from_url.enabled)",
        ));
    }
    let p = &r.params;
    let request = RemoteRequest::parse(
        &p.required_str("url")?,
        p.str("method")?.as_deref(),
        &caller_headers(p)?,
    )?;
    let folder = MediaPath::parse(&p.required_str("folder")?)?;
    let conflict = conflict_mode(p)?;
    let name = p
        .str("name")?
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty());

    let Fetched {
        url,
        content_type,
        content_disposition,
        body,
        ..
    } = Fetcher::from_config(&state.config.media)?
        .fetch(request)
        .await?;
    let staged = stage(&state, body).await?;
    let raw = name
        .or_else(|| naming::from_url(&url))
        .or_else(|| {
            content_disposition
                .as_deref()
                .and_then(naming::from_disposition)
        })
        .unwrap_or_else(|| naming::FALLBACK_NAME.to_string());
    let raw = with_extension(&state, raw, &staged.head, content_type.as_deref());
    let entry = store(&state, &folder, conflict, vec![(raw, staged)])
        .await?
        .remove(0);
    Ok(HttpResponse::Ok().json(data(file_object(&entry, &base_url(&state.config, &req)))))
}

/// A name without an extension gets one from the content or the `Content-Type`
/// (`naming::extension_for`); a name that has one keeps it, and the upload rules judge it.
fn with_extension(
    state: &AppState,
    raw: String,
    head: &[u8],
    content_type: Option<&str>,
) -> String {
    let base = names::client_basename(&raw);
    if !names::split_name(base).1.is_empty() {
        return raw;
    }
    match naming::extension_for(head, content_type, |e| state.config.accepts_extension(e)) {
        Some(ext) => format!("{}.{ext}", base.trim_end_matches('.')),
        None => raw,
    }
}

/// The caller's `headers`: a JSON object of strings, the same object as JSON text (form
/// bodies), or form fields `headers[Name]=value`. Errors name headers, never values.
fn caller_headers(p: &Params) -> Result<Vec<(String, String)>, ApiError> {
    let bad = || {
        ApiError::bad_request(
            "invalid-header",
            "`headers` must be an object whose values are strings",
        )
    };
    let mut out = Vec::new();
    let mut add = |m: &Map<String, Value>| -> Result<(), ApiError> {
        for (name, value) in m {
            let Value::String(value) = value else {
                return Err(ApiError::bad_request(
                    "invalid-header",
                    format!("The value of header `{name}` must be a string"),
                ));
            };
            out.push((name.clone(), value.clone()));
        }
        Ok(())
    };
    match p.value("headers") {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => add(m)?,
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(Value::String(s)) => match serde_json::from_str::<Value>(s) {
            Ok(Value::Object(m)) => add(&m)?,
            _ => return Err(bad()),
        },
        Some(_) => return Err(bad()),
    }
    let fields: Map<String, Value> =
        p.0.iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("headers[")?.strip_suffix(']')?;
                Some((name.to_string(), v.clone()))
            })
            .collect();
    add(&fields)?;
    Ok(out)
}
