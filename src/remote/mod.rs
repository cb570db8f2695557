//! Fetching files from other servers for upload from a URL, behind an SSRF guard.
//!
//! Owns the outbound HTTP client, the rules for which URLs and addresses may be fetched
//! (`guard`, pure), the fetch itself with its redirects, deadline and size check (`fetch`),
//! and naming what was fetched (`naming`). Knows nothing of actix, the library or the
//! filesystem: it hands back a body stream, and the upload path stages and stores it.

pub mod fetch;
pub mod guard;
pub mod naming;

pub use fetch::{Fetched, Fetcher, Limits, Lookup, RemoteRequest, SystemLookup};
pub use guard::{AddressPolicy, AddressRange, Refusal, UrlRefusal};

/// Why a URL could not be fetched. Messages name hosts and header names, never header values
/// (they may carry the caller's secrets) nor whole URLs (their queries may).
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("`url` is not a valid absolute URL ({0})")]
    BadUrl(url::ParseError),
    #[error("`method` must be one of GET, POST, PUT, PATCH, DELETE, OPTIONS")]
    BadMethod,
    #[error("{0}")]
    BadHeader(String),
    #[error("Header `{0}` cannot be set by the caller")]
    HeaderNotAllowed(String),
    #[error("This URL may not be fetched: {0}")]
    NotAllowed(UrlRefusal),
    #[error("The URL redirects to one that may not be fetched: {0}")]
    RedirectNotAllowed(UrlRefusal),
    #[error("Could not resolve the host {0}")]
    Dns(String),
    #[error("Could not connect to {0}")]
    Connect(String),
    #[error("The exchange with {0} failed")]
    Failed(String),
    #[error("{0} answered with a redirect whose Location is not a valid URL")]
    BadRedirect(String),
    #[error("{host} answered {status}")]
    Status {
        host: String,
        status: reqwest::StatusCode,
    },
    #[error("Fetching the URL took longer than {0} s")]
    Timeout(u64),
    #[error("The URL redirected more than {0} times")]
    TooManyRedirects(u32),
    #[error("File is larger than the limit of {0} bytes")]
    TooLarge(u64),
    #[error("the HTTP client could not be built")]
    Client(#[source] reqwest::Error),
}

impl FetchError {
    pub fn code(&self) -> &'static str {
        use FetchError as F;
        match self {
            F::BadUrl(_) => "invalid-url",
            F::BadMethod => "invalid-method",
            F::BadHeader(_) => "invalid-header",
            F::HeaderNotAllowed(_) => "header-not-allowed",
            F::NotAllowed(_) | F::RedirectNotAllowed(_) => "url-not-allowed",
            F::Dns(_) | F::Connect(_) | F::Failed(_) | F::BadRedirect(_) => "upstream-failed",
            F::Status { .. } => "upstream-status",
            F::Timeout(_) => "upstream-timeout",
            F::TooManyRedirects(_) => "too-many-redirects",
            F::TooLarge(_) => "file-too-large",
            F::Client(_) => "internal-error",
        }
    }
}
