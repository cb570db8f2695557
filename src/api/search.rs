//! `GET /api/files/search`: full-text search with filters, sorting and paging over the index.

use actix_web::{web, HttpRequest, HttpResponse};

use super::objects::{base_url, file_object_text};
use super::params::{BrowseRequest, Params};
use super::AppState;
use crate::error::ApiError;
use crate::index::{SearchQuery, Sort};
use crate::storage::paths::MediaPath;

/// Hits per page when `limit` is not given, and the most a page may hold.
const DEFAULT_LIMIT: usize = 20;
const MAX_LIMIT: usize = 1_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/files/search").route(web::get().to(search)));
}

/// Full-text search over every file's meta, with filters, sorting and paging.
#[utoipa::path(
    get, path = "/api/files/search", operation_id = "searchFiles", tag = "files",
    params(crate::api::openapi::SearchQuery),
    security(("bearer" = []), ("token" = [])),
    responses(
        (status = 200, description = "A page of hits and how many there are", body = crate::api::openapi::SearchResult),
        crate::api::openapi::ApiErrors,
    ),
)]
async fn search(
    req: HttpRequest,
    state: web::Data<AppState>,
    r: BrowseRequest,
) -> Result<HttpResponse, ApiError> {
    let mut query = parse_query(&r.params)?;
    query.public_only = !r.principal.sees_protected();
    let result = state.indexer.search(query).await?;
    let base = base_url(&state.config, &req);
    // The stored meta JSON is written through: each hit is neither parsed nor rebuilt.
    let mut body = String::from("{\"data\":[");
    let objects = result.hits.iter().filter_map(|hit| {
        let path = MediaPath::parse(&hit.path).ok()?;
        Some(file_object_text(
            &path,
            &hit.meta_json,
            hit.hash.as_deref(),
            &base,
        ))
    });
    for (i, object) in objects.enumerate() {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&object);
    }
    body.push_str(&format!("],\"total\":{}}}", result.total));
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(body))
}

fn parse_query(p: &Params) -> Result<SearchQuery, ApiError> {
    let limit = p.usize("limit")?.unwrap_or(DEFAULT_LIMIT);
    if limit > MAX_LIMIT {
        return Err(ApiError::bad_request(
            "invalid-parameter",
            format!("`limit` must be at most {MAX_LIMIT}"),
        ));
    }
    let folder = match p.str("folder")? {
        Some(f) => Some(MediaPath::parse(&f)?.as_str().to_string()),
        None => None,
    };
    let sort = match p.str("sort")?.filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<Sort>()
                .map_err(crate::indexer::IndexerError::from)?,
        ),
        None => None,
    };
    let text = |key: &str| -> Result<Option<String>, ApiError> {
        Ok(p.str(key)?
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty()))
    };
    Ok(SearchQuery {
        q: p.str("q")?.unwrap_or_default(),
        folder,
        mime: text("type")?,
        ext: text("ext")?.map(|e| e.trim_start_matches('.').to_string()),
        tag: text("tag")?,
        min_size: p.u64("min_size")?,
        max_size: p.u64("max_size")?,
        from: p.i64("from")?,
        to: p.i64("to")?,
        sort,
        limit,
        offset: p.usize("offset")?.unwrap_or(0),
        public_only: false,
    })
}
