//! `flextype token create|list|revoke|migrate|rotate-key`.

use std::process::ExitCode;

use clap::Subcommand;

use crate::auth::TokenKind;
use crate::config::Config;
use crate::startup::open_project;

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it once (only its hash is stored).
    Create {
        #[arg(long, value_parser = ["files", "access"])]
        kind: String,
        #[arg(long, default_value = "")]
        title: String,
        /// 0 means unlimited.
        #[arg(long, default_value_t = 0)]
        limit_calls: u64,
    },
    /// List tokens (ids, never the tokens themselves).
    List,
    /// Delete a token by id.
    Revoke { id: String },
    /// Convert legacy plaintext tokens to hashed ones; their values keep working.
    Migrate,
    /// Replace the URL signing key: every signed URL and file token issued so far stops
    /// working, in a running server too.
    RotateKey,
}

pub fn run(config: &Config, command: TokenCommand) -> anyhow::Result<ExitCode> {
    let (layout, tokens) = open_project(config)?;
    match command {
        TokenCommand::Create {
            kind,
            title,
            limit_calls,
        } => {
            let kind = TokenKind::parse(&kind).unwrap_or(TokenKind::Files);
            let (id, token) = tokens.create(kind, &title, limit_calls)?;
            eprintln!("created {} token {id}; it is shown once:", kind.dir_name());
            println!("{}", token.as_str());
        }
        TokenCommand::List => {
            println!(
                "{:<7} {:<34} {:<9} {:>12}  title",
                "kind", "id", "state", "calls/limit"
            );
            for t in tokens.list() {
                let limit = if t.limit_calls == 0 {
                    "-".to_string()
                } else {
                    t.limit_calls.to_string()
                };
                let legacy = if t.legacy { " (legacy plaintext)" } else { "" };
                println!(
                    "{:<7} {:<34} {:<9} {:>12}  {}{legacy}",
                    t.kind.dir_name(),
                    t.id,
                    t.state,
                    format!("{}/{limit}", t.calls),
                    t.title
                );
            }
        }
        TokenCommand::Revoke { id } => {
            if !tokens.revoke(&id)? {
                eprintln!("no token with id {id}");
                return Ok(ExitCode::from(1));
            }
            eprintln!("revoked {id}");
        }
        TokenCommand::Migrate => {
            let n = tokens.migrate()?;
            eprintln!("migrated {n} legacy token(s); their values keep working");
        }
        TokenCommand::RotateKey => {
            crate::signing::Signer::rotate(&layout.tokens)?;
            eprintln!("signing key replaced: earlier signed URLs and file tokens no longer work");
        }
    }
    Ok(ExitCode::SUCCESS)
}
