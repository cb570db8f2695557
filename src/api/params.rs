//! Request parameters and authentication for the JSON API.
//!
//! Flextype's clients send parameters in the query string, as a JSON body or as a form; this
//! module merges them into one [`Params`] map and turns the tokens in it (or in headers) into a
//! [`Principal`]. Handlers receive [`ReadRequest`] or [`WriteRequest`] and never see a token.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header::{self, HeaderMap};
use actix_web::{web, FromRequest, HttpRequest};
use serde_json::{Map, Value};

use super::AppState;
use crate::auth::{AuthError, Principal, TokenKind};
use crate::error::ApiError;
use crate::signing::Signer;
use crate::storage::paths::MediaPath;

/// The largest JSON or form body the API reads.
pub const MAX_BODY: usize = 4 * 1024 * 1024;

/// The words (any case) a yes/no parameter takes for yes and for no; the OpenAPI document
/// builds its pattern from these.
pub const FLAG_YES: [&str; 5] = ["true", "1", "yes", "on", "t"];
pub const FLAG_NO: [&str; 6] = ["false", "0", "no", "off", "f", ""];

/// Parameters merged from the query string and the body (the body wins).
#[derive(Debug, Default, Clone)]
pub struct Params(pub Map<String, Value>);

impl Params {
    pub fn from_query(query: &str) -> Result<Params, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query).map_err(|e| {
            ApiError::bad_request("bad-query", format!("Malformed query string: {e}"))
        })?;
        Ok(Params(
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ))
    }

    fn merge_body(&mut self, content_type: &str, body: &[u8]) -> Result<(), ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let fields: Map<String, Value> = if content_type
            .starts_with("application/x-www-form-urlencoded")
        {
            let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body).map_err(|e| {
                ApiError::bad_request("bad-body", format!("Malformed form body: {e}"))
            })?;
            pairs
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect()
        } else {
            match serde_json::from_slice::<Value>(body) {
                Ok(Value::Object(m)) => m,
                Ok(_) => {
                    return Err(ApiError::bad_request(
                        "bad-body",
                        "The JSON body must be an object",
                    ))
                }
                Err(e) => {
                    return Err(ApiError::bad_request(
                        "bad-body",
                        format!("Malformed JSON body: {e}"),
                    ))
                }
            }
        };
        self.0.extend(fields);
        Ok(())
    }

    pub fn value(&self, key: &str) -> Option<&Value> {
        self.0.get(key)
    }

    /// A text parameter: absent or `null` is `None`; a JSON value that is not a string is a
    /// 400 rather than a guess.
    pub fn str(&self, key: &str) -> Result<Option<String>, ApiError> {
        match self.0.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(invalid(key, "a string")),
        }
    }

    pub fn required_str(&self, key: &str) -> Result<String, ApiError> {
        self.str(key)?.ok_or_else(|| ApiError::missing_param(key))
    }

    /// A yes/no parameter: JSON `true`/`false`, `1`/`0`, or (any case) `true`, `1`, `yes`,
    /// `on`, `t` / `false`, `0`, `no`, `off`, `f`, `""`. Absent is `false`; anything else is a
    /// 400, so a misspelt `recursive=ture` never quietly means "no".
    pub fn flag(&self, key: &str) -> Result<bool, ApiError> {
        let yes = match self.0.get(key) {
            None | Some(Value::Null) => Some(false),
            Some(Value::Bool(b)) => Some(*b),
            Some(Value::Number(n)) => match n.as_u64() {
                Some(1) => Some(true),
                Some(0) => Some(false),
                _ => None,
            },
            Some(Value::String(s)) => {
                let s = s.to_ascii_lowercase();
                if FLAG_YES.contains(&s.as_str()) {
                    Some(true)
                } else if FLAG_NO.contains(&s.as_str()) {
                    Some(false)
                } else {
                    None
                }
            }
            Some(_) => None,
        };
        yes.ok_or_else(|| invalid(key, "true or false"))
    }

    pub fn usize(&self, key: &str) -> Result<Option<usize>, ApiError> {
        self.number(key, "a non-negative integer")
    }

    pub fn u64(&self, key: &str) -> Result<Option<u64>, ApiError> {
        self.number(key, "a non-negative integer")
    }

    pub fn i64(&self, key: &str) -> Result<Option<i64>, ApiError> {
        self.number(key, "an integer")
    }

    /// A numeric parameter: a JSON number or its decimal text; `what` names the expected form
    /// in the error.
    fn number<T: std::str::FromStr>(&self, key: &str, what: &str) -> Result<Option<T>, ApiError> {
        let text = match self.0.get(key) {
            None | Some(Value::Null) => return Ok(None),
            Some(Value::Number(n)) => n.to_string(),
            Some(Value::String(s)) => s.clone(),
            Some(_) => return Err(invalid(key, what)),
        };
        text.parse().map(Some).map_err(|_| invalid(key, what))
    }

    /// A media path parameter.
    pub fn media_path(&self, key: &str) -> Result<MediaPath, ApiError> {
        Ok(MediaPath::parse(&self.required_str(key)?)?)
    }

    /// The target of the call: `path`, or `id` as Flextype's documents name it.
    pub fn path(&self) -> Result<MediaPath, ApiError> {
        let key = if self.0.contains_key("path") {
            "path"
        } else {
            "id"
        };
        self.media_path(key).map_err(|e| {
            if e.code == "missing-parameter" {
                ApiError::missing_param("path")
            } else {
                e
            }
        })
    }
}

fn invalid(key: &str, what: &str) -> ApiError {
    ApiError::bad_request("invalid-parameter", format!("`{key}` must be {what}"))
}

fn header_token<'a>(
    headers: &'a HeaderMap,
    name: &header::HeaderName,
    schemes: &[&str],
) -> Option<&'a str> {
    let v = headers.get(name)?.to_str().ok()?.trim();
    if schemes.is_empty() {
        return Some(v);
    }
    schemes
        .iter()
        .find_map(|s| v.strip_prefix(s).map(str::trim))
}

/// The files token of a request: param `token`, or `Authorization: Bearer|Token <t>`. Both,
/// with different values, is refused: which one was meant cannot be told.
pub fn files_token(params: &Params, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let header = header_token(
        headers,
        &header::AUTHORIZATION,
        &["Bearer ", "Token ", "bearer ", "token "],
    );
    one_of(TokenKind::Files, presented(params, "token"), header)
}

/// The access token of a request: param `access_token`, or `X-Access-Token: <t>` (both, with
/// different values, is refused).
pub fn access_token(params: &Params, headers: &HeaderMap) -> Result<Option<String>, AuthError> {
    let header = header_token(
        headers,
        &header::HeaderName::from_static("x-access-token"),
        &[],
    );
    one_of(TokenKind::Access, presented(params, "access_token"), header)
}

fn one_of(
    kind: TokenKind,
    param: Option<String>,
    header: Option<&str>,
) -> Result<Option<String>, AuthError> {
    match (param, header) {
        (Some(p), Some(h)) if p != h => Err(AuthError::Conflicting(kind)),
        (Some(p), _) => Ok(Some(p)),
        (None, h) => Ok(h.map(String::from)),
    }
}

/// A token param: present means a string; `null` or any other JSON value counts as empty, so
/// it is refused rather than skipped.
fn presented(params: &Params, key: &str) -> Option<String> {
    match params.value(key)? {
        Value::String(s) => Some(s.clone()),
        _ => Some(String::new()),
    }
}

/// What a request must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A files token, or a short-lived file token (which sees no protected files).
    Browse,
    /// A files token.
    Read,
    /// A files token and an access token.
    Write,
}

/// Checks the tokens a request presents against what it needs.
pub fn authenticate(
    state: &AppState,
    params: &Params,
    headers: &HeaderMap,
    needs: Needs,
) -> Result<Principal, AuthError> {
    let presented = files_token(params, headers)?;
    if needs == Needs::Browse {
        if let Some(t) = presented.as_deref().filter(|t| Signer::is_file_token(t)) {
            let issuer = state
                .signer
                .check_file_token(t, crate::signing::now_secs())?;
            // Calls made with a file token count against the files token that issued it.
            state
                .tokens
                .check_reference(TokenKind::Files, issuer, true)?;
            return Ok(Principal {
                files_token: None,
                access_token: None,
            });
        }
    }
    let files = state.tokens.check(TokenKind::Files, presented.as_deref())?;
    let access = if needs == Needs::Write {
        Some(
            state
                .tokens
                .check(TokenKind::Access, access_token(params, headers)?.as_deref())?,
        )
    } else {
        None
    };
    Ok(Principal {
        files_token: Some(files),
        access_token: access,
    })
}

async fn read_params(req: &HttpRequest, payload: &mut Payload) -> Result<Params, ApiError> {
    let mut params = Params::from_query(req.query_string())?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    let body = web::Bytes::from_request(req, payload).await.map_err(|e| {
        ApiError::new(
            e.as_response_error().status_code(),
            "bad-body",
            format!("Could not read the body: {e}"),
        )
    })?;
    params.merge_body(&content_type, &body)?;
    Ok(params)
}

macro_rules! authed_request {
    ($name:ident, $needs:expr) => {
        /// Parameters of an authenticated request.
        pub struct $name {
            pub params: Params,
            pub principal: Principal,
        }

        impl FromRequest for $name {
            type Error = ApiError;
            type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

            fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
                let req = req.clone();
                let mut payload = payload.take();
                Box::pin(async move {
                    let params = read_params(&req, &mut payload).await?;
                    let state = super::state(&req)?;
                    let principal = authenticate(&state, &params, req.headers(), $needs)?;
                    Ok($name { params, principal })
                })
            }
        }
    };
}

authed_request!(BrowseRequest, Needs::Browse);
authed_request!(ReadRequest, Needs::Read);
authed_request!(WriteRequest, Needs::Write);
