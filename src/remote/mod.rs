//! Fetching files from other servers for upload from a URL, behind an SSRF guard.
//!
//! Owns the rules for which URLs and addresses may be fetched (`guard`, pure) and naming what
//! was fetched (`naming`). Knows nothing of actix, the library or the filesystem.

pub mod guard;
pub mod naming;

pub use guard::{AddressPolicy, AddressRange, Refusal, UrlRefusal};
