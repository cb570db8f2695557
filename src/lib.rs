//! flextype: a media backend for flat-file websites.
//!
//! Files under `project/uploads/` are the truth, their meta lives in YAML beside them in the
//! `.meta` mirror tree, and every file is content-addressed by BLAKE3. See
//! `docs/ARCHITECTURE.md` for how the modules fit together.

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod exif;
pub mod fuzzing;
pub mod hashing;
pub mod index;
pub mod indexer;
pub mod library;
pub mod progress;
pub mod remote;
pub mod signing;
pub mod sniff;
pub mod startup;
pub mod storage;
pub mod telemetry;
pub mod thumbs;
pub mod verify;
pub mod watcher;
