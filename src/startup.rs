//! Wiring: builds the application from a config, binds the listener and exposes the bound
//! port, so tests can start the real server on port 0 in-process.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_cors::Cors;
use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Condition;
use actix_web::{web, App, HttpServer};
use anyhow::Context;

use crate::api::{self, serve::HotCache, AppState};
use crate::auth::{TokenKind, TokenStore};
use crate::config::Config;
use crate::indexer::Indexer;
use crate::library::Library;
use crate::signing::Signer;
use crate::storage::atomic;
use crate::storage::paths::Layout;
use crate::thumbs::Thumbs;
use crate::watcher;

/// How often call counters are written to the token files.
const TOKEN_FLUSH: Duration = Duration::from_secs(1);
/// How often thumbnail uses are written back to the cache files' mtimes (their LRU order).
const THUMB_STAMP: Duration = Duration::from_secs(300);

pub struct Application {
    port: u16,
    server: Server,
    tokens: Arc<TokenStore>,
    library: Library,
    indexer: Indexer,
    thumbs: Thumbs,
    watcher: Option<watcher::Watcher>,
}

/// Opens the project: creates missing folders, removes temp files a crash left behind, and
/// on first start creates one token of each kind and prints them once.
pub fn open_project(config: &Config) -> anyhow::Result<(Layout, Arc<TokenStore>)> {
    let layout = Layout::open(&config.project)
        .with_context(|| format!("opening project folder {}", config.project.display()))?;
    let swept = atomic::sweep_stale(&layout.uploads) + atomic::sweep_stale(&layout.tokens);
    if swept > 0 {
        tracing::info!(
            count = swept,
            "removed temp files left by an interrupted write"
        );
    }
    let tokens = Arc::new(TokenStore::new(
        &layout.tokens,
        config.tokens.legacy_plaintext,
    ));
    Ok((layout, tokens))
}

fn first_start_tokens(tokens: &TokenStore) -> anyhow::Result<()> {
    if !tokens.is_empty() {
        return Ok(());
    }
    let (_, files) = tokens.create(TokenKind::Files, "Default files token", 0)?;
    let (_, access) = tokens.create(TokenKind::Access, "Default access token", 0)?;
    // Printed once on the console, never logged: only their hashes are stored.
    println!("No tokens found: created a files token and an access token.");
    println!("Keep them now; they are stored hashed and cannot be shown again.");
    println!("  files token:  {}", files.as_str());
    println!("  access token: {}", access.as_str());
    Ok(())
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Application> {
        let config = Arc::new(config);
        let (layout, tokens) = open_project(&config)?;
        first_start_tokens(&tokens)?;
        let library = Library::new(layout, config.clone());
        let indexer = Indexer::open(library.clone())?;
        let signer = Arc::new(
            Signer::open(&library.layout().tokens).context("opening the URL signing key")?,
        );
        let thumbs_dir = library.layout().cache.join("thumbs");
        let thumbs = Thumbs::open(&thumbs_dir, &config.media.thumbs)
            .with_context(|| format!("opening the thumbnail cache {}", thumbs_dir.display()))?;
        let state = web::Data::new(AppState {
            library: library.clone(),
            indexer: indexer.clone(),
            tokens: tokens.clone(),
            config: config.clone(),
            hot: HotCache::new(
                config.server.hot_cache_bytes,
                config.server.hot_file_max_bytes,
            ),
            signer,
            thumbs: thumbs.clone(),
        });

        let listener = TcpListener::bind(config.bind_address())
            .with_context(|| format!("binding {}", config.server.address))?;
        let port = listener.local_addr()?.port();
        let cors_config = config.cors.clone();
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(Condition::new(
                    cors_config.enabled,
                    cors(&cors_config.origin),
                ))
                .configure(api::configure)
        })
        .on_connect(|conn, _| {
            // Headers and body leave in separate writes; without NODELAY, Nagle's algorithm
            // meets delayed ACKs and small responses stall for tens of milliseconds.
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .listen(listener)?;
        if config.server.workers > 0 {
            server = server.workers(config.server.workers);
        }
        let server = server.run();

        // Watching starts before the start-up reconcile walks the tree, so nothing done by
        // hand during the walk is missed.
        let watcher = if config.watch.enabled {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            let quiet = Duration::from_millis(config.watch.quiet_ms);
            let watching = watcher::watch(&library.layout().uploads, quiet, tx.clone());
            // The periodic reconcile and orphan expiry run even when watching is impossible
            // (e.g. the inotify watch limit is reached): the server still follows, only later.
            indexer.follow_hand(rx, tx);
            match watching {
                Ok(w) => Some(w),
                Err(e) => {
                    tracing::error!(error = %e, "cannot watch the uploads folder; changes made by hand are picked up by the periodic reconcile (watch.reconcile_interval_s)");
                    None
                }
            }
        } else {
            None
        };
        indexer.start();
        let flushing = tokens.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(TOKEN_FLUSH);
            loop {
                tick.tick().await;
                let t = flushing.clone();
                let _ = tokio::task::spawn_blocking(move || t.flush()).await;
            }
        });
        let stamping = thumbs.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(THUMB_STAMP);
            tick.tick().await;
            loop {
                tick.tick().await;
                let t = stamping.clone();
                let _ = tokio::task::spawn_blocking(move || t.stamp()).await;
            }
        });
        tracing::info!(address = %config.server.address, port, project = %config.project.display(), "flextype listening");
        Ok(Application {
            port,
            server,
            tokens,
            library,
            indexer,
            thumbs,
            watcher,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    pub fn library(&self) -> &Library {
        &self.library
    }

    pub fn indexer(&self) -> &Indexer {
        &self.indexer
    }

    /// Serves until stopped (SIGINT/SIGTERM or the handle), then writes pending counters.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let result = self.server.await;
        drop(self.watcher);
        self.indexer.shutdown().await;
        let thumbs = self.thumbs.clone();
        let _ = tokio::task::spawn_blocking(move || thumbs.stamp()).await;
        if let Err(e) = self.tokens.flush() {
            tracing::warn!(error = %e, "could not write call counters at shutdown");
        }
        result
    }
}

fn cors(origin: &str) -> Cors {
    let cors = Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_headers(["ETag", "Content-Range", "Content-Disposition"])
        .max_age(3600);
    if origin == "*" {
        cors.allow_any_origin().send_wildcard()
    } else {
        cors.allowed_origin(origin)
    }
}
