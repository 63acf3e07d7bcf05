//! The subcommands besides serving: `sign`, `migrate`, `check-config`, `--help`, `--version`.
//!
//! Each returns the process exit code; messages go to stdout (results) or stderr (problems).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, Accepts, Config, VARIABLES};
use crate::db_error;
use crate::limits::BODY_SIZE_MAX;
use crate::secret;
use crate::signature;
use crate::store;

/// Text of `hooksink --help`.
pub fn help() -> String {
    let mut text = format!(
        "hooksink {}: receives signed payment webhooks and stores them in PostgreSQL\n\n\
         USAGE:\n  hooksink                 serve (POST /webhook, GET /healthz /readyz /metrics)\n  \
         hooksink sign [--id ID] [--timestamp SECS]\n                           \
         read a body on stdin, print its webhook-* headers\n  \
         hooksink secret          print a fresh random whsec_ secret for WEBHOOK_SECRET\n  \
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

/// The one-line usage of `hooksink sign`.
const SIGN_USAGE: &str = "usage: hooksink sign [--id ID] [--timestamp SECS] < body";

/// Text of `hooksink sign --help` after the usage line.
const SIGN_HELP: &str = "Reads a body on stdin and prints its webhook-id, webhook-timestamp and webhook-signature\n\
    header lines, signed with the first secret of WEBHOOK_SECRET.\n\n  \
    --id ID           webhook-id to sign (default: a new one each run; repeat an id to\n                    \
    send a duplicate)\n  \
    --timestamp SECS  webhook-timestamp in unix seconds (default: now)\n";

/// `hooksink sign`: prints `webhook-id`, `webhook-timestamp` and `webhook-signature` header
/// lines for the body on stdin, signed with the first secret of `WEBHOOK_SECRET`.
pub fn sign(args: &[String]) -> ExitCode {
    let now = now_secs();
    let mut id = format!("msg_{now:x}{:x}", std::process::id());
    let mut timestamp = now;
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if matches!(flag.as_str(), "--help" | "-h") {
            print!("{SIGN_USAGE}\n\n{SIGN_HELP}");
            return ExitCode::SUCCESS;
        }
        let value = rest.next();
        match (flag.as_str(), value) {
            ("--id", Some(value)) => id.clone_from(value),
            ("--timestamp", Some(value)) => match value.parse() {
                Ok(value) => timestamp = value,
                Err(_) => return fail("--timestamp takes unix seconds"),
            },
            _ => return fail(SIGN_USAGE),
        }
    }
    // Worded as the server words it: the same condition gets the same message.
    let Ok(secret) = std::env::var(config::WEBHOOK_SECRET.name) else {
        return fail(&config::Error::Missing(&config::WEBHOOK_SECRET).to_string());
    };
    let secrets = match signature::Secrets::parse(&secret) {
        Ok(secrets) => secrets,
        Err(error) => return fail(&error.to_string()),
    };
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

/// `hooksink secret`: prints a fresh `whsec_...` secret for `WEBHOOK_SECRET`.
pub fn secret() -> ExitCode {
    match secret::generate() {
        Ok(secret) => {
            println!("{secret}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&format!("cannot read the system's random source: {error}")),
    }
}

/// `hooksink migrate` and `hooksink check-config`: both validate the environment and reach
/// the database; `migrate` also applies pending migrations.
pub fn database_command(config: &Config, database_url: &str, apply: bool) -> ExitCode {
    let connection = match store::connection_config(database_url) {
        Ok(connection) => connection,
        Err(error) => {
            let cause = db_error::chain(&error);
            return fail(&format!("DATABASE_URL is not usable: {cause}"));
        }
    };
    let mut client = match store::connect(&connection) {
        Ok(client) => client,
        Err(error) => {
            let cause = db_error::describe(&error, &connection);
            return fail(&format!("cannot connect to the database: {cause}"));
        }
    };
    if apply {
        return match store::migrate(&mut client) {
            Ok(applied) => {
                println!("migrations applied: {applied}");
                ExitCode::SUCCESS
            }
            Err(error) => fail(&format!(
                "migration failed: {}",
                db_error::describe(&error, &connection)
            )),
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
        Err(error) => fail(&format!(
            "database query failed: {}",
            db_error::describe(&error, &connection)
        )),
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
