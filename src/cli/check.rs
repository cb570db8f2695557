//! `flextype index rebuild` and `flextype verify [--fix]`: long runs over the whole tree, with
//! a progress bar on a terminal and plain lines otherwise.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use anyhow::Context;
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};

use crate::config::Config;
use crate::index::SearchIndex;
use crate::indexer::Indexer;
use crate::library::Library;
use crate::progress::Progress;
use crate::startup::open_project;

#[derive(Subcommand)]
pub enum IndexCommand {
    /// Rebuild the search index from the files and their meta (stop the server first).
    Rebuild,
}

/// A bar on a terminal; otherwise a line at the start, at every tenth and at the end.
struct Report {
    what: &'static str,
    unit: &'static str,
    bar: Option<ProgressBar>,
    total: AtomicU64,
    done: AtomicU64,
}

impl Report {
    fn new(what: &'static str, unit: &'static str) -> Report {
        Report {
            what,
            unit,
            bar: std::io::stderr().is_terminal().then(ProgressBar::hidden),
            total: AtomicU64::new(0),
            done: AtomicU64::new(0),
        }
    }
}

impl Progress for Report {
    fn begin(&self, total: u64) {
        self.total.store(total, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => {
                let template = if self.unit == "bytes" {
                    "{msg} [{bar:40}] {bytes}/{total_bytes} ({eta})"
                } else {
                    "{msg} [{bar:40}] {pos}/{len} ({eta})"
                };
                bar.set_style(
                    ProgressStyle::with_template(template)
                        .unwrap_or_else(|_| ProgressStyle::default_bar())
                        .progress_chars("=> "),
                );
                bar.set_length(total);
                bar.set_message(self.what);
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
            None => eprintln!("{}: {total} {} to go", self.what, self.unit),
        }
    }

    fn advance(&self, done: u64) {
        let before = self.done.fetch_add(done, Ordering::Relaxed);
        match &self.bar {
            Some(bar) => bar.inc(done),
            None => {
                let total = self.total.load(Ordering::Relaxed).max(1);
                let (was, now) = (before * 10 / total, (before + done) * 10 / total);
                if now > was && now < 10 {
                    eprintln!("{}: {}%", self.what, now * 10);
                }
            }
        }
    }

    fn finish(&self) {
        match &self.bar {
            Some(bar) => bar.finish_and_clear(),
            None => eprintln!("{}: done", self.what),
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub fn index(config: Config, command: IndexCommand) -> anyhow::Result<ExitCode> {
    let IndexCommand::Rebuild = command;
    let (layout, _) = open_project(&config)?;
    runtime()?.block_on(async move {
        let library = Library::new(layout, Arc::new(config));
        let indexer = Indexer::open(library.clone())
            .context("opening the search index (is a server running on this project?)")?;
        indexer.index().clear()?;
        indexer.index().commit()?;
        let report = Report::new("indexing", "files");
        let r = indexer.reconcile_with(&report).await?;
        println!(
            "index rebuilt: {} of {} files indexed",
            indexer.index().count(),
            r.files
        );
        indexer.shutdown().await;
        Ok(ExitCode::SUCCESS)
    })
}

pub fn verify(config: Config, fix: bool) -> anyhow::Result<ExitCode> {
    let (layout, _) = open_project(&config)?;
    runtime()?.block_on(async move {
        let index_dir = layout.cache.join("index");
        let library = Library::new(layout, Arc::new(config));
        let index = match SearchIndex::open(&index_dir, library.protection().fingerprint()) {
            Ok((index, _)) => Some(index),
            Err(e) => {
                eprintln!("the index is not checked: {e}");
                None
            }
        };
        let report = Report::new("verifying", "bytes");
        let findings = crate::verify::verify(&library, index.as_ref(), fix, &report).await?;
        for f in &findings {
            let fixed = if f.fixed { "  [fixed]" } else { "" };
            println!("{:<14} {}  {}{fixed}", f.kind.code(), f.path, f.detail);
        }
        let fixed = findings.iter().filter(|f| f.fixed).count();
        if findings.is_empty() {
            println!("verify: no problems found");
            Ok(ExitCode::SUCCESS)
        } else {
            println!("verify: {} problems found, {fixed} fixed", findings.len());
            Ok(ExitCode::FAILURE)
        }
    })
}
