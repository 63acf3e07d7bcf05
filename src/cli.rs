//! The subcommands besides serving: `sign`, `migrate`, `check-config`, `--help`, `--version`.
//!
//! Each returns the process exit code; messages go to stdout (results) or stderr (problems).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Accepts, Config, VARIABLES};
use crate::limits::BODY_SIZE_MAX;
use crate::signature;
use crate::store;

/// Text of `hooksink --help`.
pub fn help() -> String {
    let mut text = format!(
        "hooksink {}: receives signed payment webhooks and stores them in PostgreSQL\n\n\
         USAGE:\n  hooksink                 serve (POST /webhook, GET /healthz /readyz /metrics)\n  \
         hooksink sign [--id ID] [--timestamp SECS]\n                           \
         read a body on stdin, print its webhook-* headers\n  \
         hooksink migrate         apply sql/ migrations and exit\n  \
         hooksink check-config    validate the environment, connect to the database, exit\n  \
         hooksink --help | --version\n\nENVIRONMENT:\n",
        env!("CARGO_PKG_VERSION")
    );
    for variable in VARIABLES {
        let range = match variable.accepts {
            Accepts::Range { min, max } => format!(", {min}..={max}"),
            Accepts::Address | Accepts::Text => String::new(),
        };
        text.push_str(&format!(
            "  {:<26}{}{range} (default: {})\n",
            variable.name, variable.meaning, variable.default
        ));
    }
    text
}

/// `hooksink sign`: prints `webhook-id`, `webhook-timestamp` and `webhook-signature` header
/// lines for the body on stdin, signed with the first secret of `WEBHOOK_SECRET`.
pub fn sign(args: &[String]) -> ExitCode {
    let secret = std::env::var("WEBHOOK_SECRET").unwrap_or_default();
    let secrets = match signature::Secrets::parse(&secret) {
        Ok(secrets) => secrets,
        Err(error) => return fail(&error.to_string()),
    };
    let now = now_secs();
    let mut id = format!("msg_{now:x}{:x}", std::process::id());
    let mut timestamp = now;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        let value = rest.next();
        match (flag.as_str(), value) {
            ("--id", Some(value)) => id.clone_from(value),
            ("--timestamp", Some(value)) => match value.parse() {
                Ok(value) => timestamp = value,
                Err(_) => return fail("--timestamp takes unix seconds"),
            },
            _ => return fail("usage: hooksink sign [--id ID] [--timestamp SECS] < body"),
        }
    }
    let mut body = Vec::new();
    let limit = BODY_SIZE_MAX as u64 + 1;
    if let Err(error) = std::io::stdin().take(limit).read_to_end(&mut body) {
        return fail(&format!("cannot read the body from stdin: {error}"));
    }
    let signature = signature::sign(&secrets, &id, timestamp, &body);
    let mut out = std::io::stdout().lock();
    let written = write!(
        out,
        "webhook-id: {id}\nwebhook-timestamp: {timestamp}\nwebhook-signature: {signature}\n"
    );
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(_) => ExitCode::FAILURE,
    }
}

/// `hooksink migrate` and `hooksink check-config`: both validate the environment and reach
/// the database; `migrate` also applies pending migrations.
pub fn database_command(config: &Config, database_url: &str, apply: bool) -> ExitCode {
    let connection = match store::connection_config(database_url) {
        Ok(connection) => connection,
        Err(error) => return fail(&format!("DATABASE_URL is not usable: {error}")),
    };
    let mut client = match store::connect(&connection) {
        Ok(client) => client,
        Err(error) => return fail(&format!("cannot connect to the database: {error}")),
    };
    if apply {
        return match store::migrate(&mut client) {
            Ok(applied) => {
                println!("migrations applied: {applied}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&format!("migration failed: {error}")),
        };
    }
    match store::pending_migrations(&mut client) {
        Ok(0) => {
            println!("configuration ok: {}", config.describe());
            ExitCode::SUCCESS
        }
        Ok(pending) => {
            println!(
                "configuration ok, {pending} migration(s) pending: {}",
                config.describe()
            );
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("database query failed: {error}")),
    }
}

/// Prints `message` to stderr and returns the failure exit code.
pub fn fail(message: &str) -> ExitCode {
    eprintln!("hooksink: {message}");
    ExitCode::FAILURE
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
