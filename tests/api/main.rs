//! One integration-test binary: the real server on port 0 over a temp project, spoken to
//! over HTTP.

mod cli;
mod concurrency;
mod crash;
mod files;
mod folders;
mod from_url;
mod helpers;
mod hostile;
mod meta;
mod openapi;
mod paths;
mod protected;
mod search;
mod serve;
mod thumbs;
mod tokens;
mod upload;
mod verify;
mod watch;
