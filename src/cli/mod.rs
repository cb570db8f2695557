//! The command line: parses arguments and dispatches to `startup` and the services.

mod check;
mod token;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;

#[derive(Parser)]
#[command(
    name = "flextype",
    version,
    about = "A media backend for flat-file websites"
)]
struct Cli {
    /// The config file (default: flextype.yaml in the working directory, if present).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the server (creates the project folder if missing).
    Serve,
    /// Maintain the search index.
    Index {
        #[command(subcommand)]
        command: check::IndexCommand,
    },
    /// Re-hash every file; report corrupt or changed content, missing, orphaned or invalid
    /// meta and index drift. Exits 1 when it found any.
    Verify {
        /// Repair what can be repaired without losing editors' fields.
        #[arg(long)]
        fix: bool,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    crate::telemetry::init();
    let config = match Config::load(cli.config.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("flextype: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match cli.command {
        Command::Serve => serve(config),
        Command::Token { command } => token::run(&config, command),
        Command::Index { command } => check::index(config, command),
        Command::Verify { fix } => check::verify(config, fix),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("flextype: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn serve(config: Config) -> anyhow::Result<ExitCode> {
    actix_web::rt::System::new().block_on(async move {
        let app = crate::startup::Application::build(config).await?;
        app.run_until_stopped().await?;
        Ok(ExitCode::SUCCESS)
    })
}
