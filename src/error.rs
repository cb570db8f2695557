//! The one place where errors become HTTP answers.
//!
//! Every module owns its own error enum; this module maps each variant to a status, a stable
//! kebab-case `code` and a message for the client. Unexpected failures are logged with their
//! whole cause chain and answered with a plain 500 that tells the client little.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

use crate::auth::AuthError;
use crate::hashing::BadHash;
use crate::index::IndexError;
use crate::indexer::IndexerError;
use crate::library::LibraryError;
use crate::remote::FetchError;
use crate::signing::CredentialError;
use crate::storage::paths::PathError;
use crate::thumbs::ThumbError;

/// An error as the client sees it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (503 answers).
    pub retry_after: Option<u64>,
    /// The methods a route takes, for the `Allow` header of a 405.
    pub allow: Option<&'static str>,
}

#[derive(Serialize)]
struct Body<'a> {
    http_status_code: u16,
    message: &'a str,
    code: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            retry_after: None,
            allow: None,
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn missing_param(name: &str) -> Self {
        Self::bad_request(
            "missing-parameter",
            format!("Parameter `{name}` is required"),
        )
    }

    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }

    /// 405 for a route that takes `allow` (an `Allow` header value) only.
    pub fn method_not_allowed(allow: Option<&'static str>, message: impl Into<String>) -> Self {
        ApiError {
            allow,
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method-not-allowed",
                message,
            )
        }
    }

    /// Logs the cause chain and hides it from the client.
    pub fn unexpected(err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = err.to_string();
        let mut source = err.source();
        while let Some(s) = source {
            chain.push_str(": ");
            chain.push_str(&s.to_string());
            source = s.source();
        }
        tracing::error!(error = %chain, "unexpected error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal-error",
            "Internal server error",
        )
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.message, self.code)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut res = HttpResponse::build(self.status);
        if let Some(secs) = self.retry_after {
            res.insert_header((actix_web::http::header::RETRY_AFTER, secs.to_string()));
        }
        if let Some(methods) = self.allow {
            res.insert_header((actix_web::http::header::ALLOW, methods));
        }
        res.json(Body {
            http_status_code: self.status.as_u16(),
            message: &self.message,
            code: self.code,
        })
    }
}

impl From<PathError> for ApiError {
    fn from(e: PathError) -> Self {
        ApiError::bad_request("invalid-path", e.to_string())
    }
}

/// A hash a client sent that is not one (a hash URL that names none is a 404 instead).
impl From<BadHash> for ApiError {
    fn from(e: BadHash) -> Self {
        ApiError::bad_request("invalid-hash", e.to_string())
    }
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Missing(_)
            | AuthError::Invalid(_)
            | AuthError::Disabled(_)
            | AuthError::Conflicting(_)
            | AuthError::FileToken(_) => {
                ApiError::new(StatusCode::UNAUTHORIZED, e.code(), e.to_string())
            }
            AuthError::LimitReached(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, e.code(), e.to_string())
            }
            AuthError::Io(ref inner) => ApiError::unexpected(inner),
        }
    }
}

/// A credential for protected content that does not open it: 403, as for no credential.
impl From<CredentialError> for ApiError {
    fn from(e: CredentialError) -> Self {
        ApiError::new(StatusCode::FORBIDDEN, e.code(), e.to_string())
    }
}

impl ApiError {
    /// A protected file asked for without a credential; the same whether it exists or not.
    pub fn protected() -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "file-protected",
            "This file is protected: a file token (`token`) or a signed URL (`expires`, `sig`) is required",
        )
    }
}

impl From<LibraryError> for ApiError {
    fn from(e: LibraryError) -> Self {
        use LibraryError as L;
        let status = match &e {
            L::Path(p) => return p.clone().into(),
            L::FileNotFound | L::FolderNotFound | L::FieldNotFound(_) | L::HashNotFound => {
                StatusCode::NOT_FOUND
            }
            L::FileExists(_) | L::FolderExists(_) | L::FieldExists(_) | L::FolderNotEmpty => {
                StatusCode::CONFLICT
            }
            L::TooLarge(_) | L::MetaTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            L::Unreadable => StatusCode::FORBIDDEN,
            L::TypeNotAccepted(_) | L::ContentMismatch { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            L::BadRequest(..) | L::SystemField(_) | L::NotAFile | L::NotAFolder => {
                StatusCode::BAD_REQUEST
            }
            L::Io(inner) => return ApiError::unexpected(inner),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<IndexerError> for ApiError {
    fn from(e: IndexerError) -> Self {
        match e {
            IndexerError::Index(IndexError::BadQuery(m)) => Self::bad_request("invalid-query", m),
            IndexerError::Index(IndexError::BadSort(m)) => Self::bad_request("invalid-sort", m),
            IndexerError::Library(inner) => inner.into(),
            other => ApiError::unexpected(&other),
        }
    }
}

impl From<actix_multipart::MultipartError> for ApiError {
    fn from(e: actix_multipart::MultipartError) -> Self {
        ApiError::bad_request("bad-multipart", format!("Malformed multipart body: {e}"))
    }
}

impl From<FetchError> for ApiError {
    fn from(e: FetchError) -> Self {
        use FetchError as F;
        let status = match &e {
            F::BadUrl(_)
            | F::BadMethod
            | F::BadHeader(_)
            | F::HeaderNotAllowed(_)
            | F::NotAllowed(_)
            | F::RedirectNotAllowed(_) => StatusCode::BAD_REQUEST,
            F::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            F::Dns(_)
            | F::Connect(_)
            | F::Failed(_)
            | F::BadRedirect(_)
            | F::Status { .. }
            | F::Timeout(_)
            | F::TooManyRedirects(_) => StatusCode::BAD_GATEWAY,
            F::Client(_) => return ApiError::unexpected(&e),
        };
        ApiError::new(status, e.code(), e.to_string())
    }
}

impl From<ThumbError> for ApiError {
    fn from(e: ThumbError) -> Self {
        match &e {
            ThumbError::Busy { retry_after } => ApiError {
                retry_after: Some(retry_after.as_secs().max(1)),
                ..ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.code(), e.to_string())
            },
            ThumbError::Unexpected(_) => ApiError::unexpected(&e),
        }
    }
}
