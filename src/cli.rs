//! The subcommands besides serving: `sign`, `secret`, `keypair`, `migrate`, `check-config`,
//! `--help`, `--version`.
//!
//! Each returns the process exit code; messages go to stdout (results) or stderr (problems).

use std::io::{Read, Write};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{self, Accepts, Config, VARIABLES, Value, Variable};
use crate::db_error;
use crate::limits::BODY_SIZE_MAX;
use crate::secret;
use crate::signature::standard::{Keys, PrivateKey};
use crate::signature::{self, Scheme, stripe};
use crate::store;

/// Text of `hooksink --help`.
pub fn help() -> String {
    let mut text = format!(
        "hooksink {}: receives signed payment webhooks and stores them in PostgreSQL\n\n\
         USAGE:\n  hooksink                 serve (POST /webhook, POST /stripe,\n\
         {pad:27}GET /healthz /readyz /metrics)\n  \
         hooksink sign [--scheme standard|stripe] [--id ID] [--private-key] [--timestamp SECS]\n\
         {pad:27}read a body on stdin, print its signature headers (sign --help)\n  \
         hooksink secret          print a fresh random whsec_ secret for WEBHOOK_SECRET\n  \
         hooksink keypair         print a fresh ed25519 key pair: a whsk_ private key for\n\
         {pad:27}WEBHOOK_SIGNING_KEY (sign --private-key) and its whpk_ public key for\n\
         {pad:27}WEBHOOK_SECRET\n  \
         hooksink migrate         apply sql/ migrations and exit\n  \
         hooksink check-config    validate the environment, connect to the database, exit\n  \
         hooksink --help | --version\n\nENVIRONMENT:\n",
        env!("CARGO_PKG_VERSION"),
        // Continuation lines line up under the first column of descriptions.
        pad = "",
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

/// The variable `sign --private-key` takes its `whsk_` key from (the sender's, so not one of
/// the server's `config::VARIABLES`). Never an argument: other users of the machine read every
/// process's arguments (`ps`, `/proc/PID/cmdline`). `sign` and `sign --scheme stripe` read the
/// server's own rows, `config::WEBHOOK_SECRET` and `config::STRIPE_WEBHOOK_SECRET`.
static SIGNING_KEY: Variable = Variable {
    name: "WEBHOOK_SIGNING_KEY",
    default: Value::Text("(none)"),
    accepts: Accepts::Text,
    meaning: "whsk_ ed25519 private key that sign --private-key signs with",
};
/// How `sign --scheme stripe` names its header line, as Stripe's documentation writes it.
const STRIPE_HEADER_LINE: &str = "Stripe-Signature";

/// The one-line usage of `hooksink sign`.
const SIGN_USAGE: &str = "usage: hooksink sign [--scheme standard|stripe] [--id ID] [--private-key] \
    [--timestamp SECS] < body";

/// Text of `hooksink sign --help` after the usage line.
const SIGN_HELP: &str = "Reads a body on stdin and prints its signature header lines, for curl -H @-.\n\n  \
    --scheme standard  (default) webhook-id, webhook-timestamp and webhook-signature lines,\n                     \
    v1 (HMAC-SHA256) with the first whsec_ secret of WEBHOOK_SECRET\n  \
    --scheme stripe    one Stripe-Signature: t=...,v1=... line, with the first secret of\n                     \
    STRIPE_WEBHOOK_SECRET (the whsec_ string as is is the key)\n  \
    --id ID            webhook-id to sign (standard only; default: a new one each run;\n                     \
    repeat an id to send a duplicate)\n  \
    --private-key      sign v1a (ed25519) with the whsk_ key in WEBHOOK_SIGNING_KEY instead\n                     \
    (standard only; hooksink keypair makes one; keys are never taken\n                     \
    from arguments, which other users see in ps)\n  \
    --timestamp SECS   signed timestamp in unix seconds (default: now)\n";

/// What `hooksink sign` was asked for; the keys are read after the arguments check out.
struct SignRequest {
    scheme: Scheme,
    id: Option<String>,
    private_key: bool,
    timestamp: Option<i64>,
}

/// The key a `SignRequest` signs with, read from the environment.
enum Signer {
    Standard(signature::Secrets),
    StandardPrivate(PrivateKey),
    Stripe(stripe::Secrets),
}

/// `hooksink sign`: prints the signature header lines of the body on stdin (see `SIGN_HELP`).
pub fn sign(args: &[String]) -> ExitCode {
    let request = match parse_sign_args(args) {
        Ok(Some(request)) => request,
        Ok(None) => {
            print!("{SIGN_USAGE}\n\n{SIGN_HELP}");
            return ExitCode::SUCCESS;
        }
        Err(message) => return fail(&message),
    };
    let signer = match signer(&request) {
        Ok(signer) => signer,
        Err(message) => return fail(&message),
    };
    let mut body = Vec::new();
    let limit = BODY_SIZE_MAX as u64 + 1;
    if let Err(error) = std::io::stdin().take(limit).read_to_end(&mut body) {
        return fail(&format!("cannot read the body from stdin: {error}"));
    }
    if body.len() > BODY_SIZE_MAX {
        return fail(&format!(
            "the body on stdin is longer than {BODY_SIZE_MAX} bytes, the most hooksink accepts"
        ));
    }
    let now = now_secs();
    let timestamp = request.timestamp.unwrap_or(now);
    let id = request
        .id
        .unwrap_or_else(|| format!("msg_{now:x}{:x}", std::process::id()));
    let lines = match signer {
        Signer::Standard(secrets) => standard_lines(
            &id,
            timestamp,
            &signature::sign(&secrets, &id, timestamp, &body),
        ),
        Signer::StandardPrivate(key) => {
            standard_lines(&id, timestamp, &key.sign(&id, timestamp, &body))
        }
        Signer::Stripe(secrets) => format!(
            "{STRIPE_HEADER_LINE}: {}\n",
            stripe::sign(&secrets, timestamp, &body)
        ),
    };
    match std::io::stdout().lock().write_all(lines.as_bytes()) {
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
        Err(error) => fail(&random_source_error(&error)),
    }
}

/// `hooksink keypair`: prints a fresh ed25519 key pair as two `NAME=value` lines, each named
/// for the variable it goes in: the private key for the sender, the public key for hooksink
/// (alone, or added to the secrets already in `WEBHOOK_SECRET`).
pub fn keypair() -> ExitCode {
    match PrivateKey::generate() {
        Ok(key) => {
            let (private, public) = (key.to_text(), key.public_key());
            let (private_name, public_name) = (SIGNING_KEY.name, config::WEBHOOK_SECRET.name);
            println!("{private_name}={private}\n{public_name}={public}");
            ExitCode::SUCCESS
        }
        Err(error) => fail(&random_source_error(&error)),
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

/// `sign`'s arguments; `Ok(None)` for `--help`. Messages never repeat an argument that looks
/// like a key.
fn parse_sign_args(args: &[String]) -> Result<Option<SignRequest>, String> {
    let mut request = SignRequest {
        scheme: Scheme::Standard,
        id: None,
        private_key: false,
        timestamp: None,
    };
    let mut rest = args.iter();
    while let Some(flag) = rest.next() {
        if KEY_PREFIXES.iter().any(|prefix| flag.starts_with(prefix)) {
            return Err(format!(
                "sign reads keys from the environment, never from arguments (other users see \
                 those in ps): set {}, {} or {}",
                config::WEBHOOK_SECRET.name,
                config::STRIPE_WEBHOOK_SECRET.name,
                SIGNING_KEY.name
            ));
        }
        match flag.as_str() {
            "--help" | "-h" => return Ok(None),
            "--private-key" => request.private_key = true,
            "--scheme" => {
                request.scheme = match rest.next().map(String::as_str) {
                    Some("standard") => Scheme::Standard,
                    Some("stripe") => Scheme::Stripe,
                    _ => return Err("--scheme takes standard or stripe".to_owned()),
                }
            }
            "--id" => request.id = Some(rest.next().ok_or(SIGN_USAGE)?.clone()),
            "--timestamp" => match rest.next().map(|value| value.parse()) {
                Some(Ok(value)) => request.timestamp = Some(value),
                _ => return Err("--timestamp takes unix seconds".to_owned()),
            },
            _ => return Err(SIGN_USAGE.to_owned()),
        }
    }
    if request.scheme == Scheme::Stripe {
        // Stripe signs no id (the event id is in the body) and has no public-key signatures.
        for (given, flag) in [
            (request.id.is_some(), "--id"),
            (request.private_key, "--private-key"),
        ] {
            if given {
                return Err(format!("{flag} applies to --scheme standard only"));
            }
        }
    }
    Ok(Some(request))
}

/// Argument starts that mark a key someone tried to pass on the command line.
const KEY_PREFIXES: [&str; 3] = ["whsec_", "whsk_", "whpk_"];

/// The key `request` signs with, from the variable its scheme reads. Errors name the variable
/// and the problem, never the value.
fn signer(request: &SignRequest) -> Result<Signer, String> {
    let read = |variable: &'static Variable| {
        std::env::var(variable.name).map_err(|_| config::Error::Missing(variable).to_string())
    };
    match (request.scheme, request.private_key) {
        (Scheme::Stripe, _) => stripe::Secrets::parse(&read(&config::STRIPE_WEBHOOK_SECRET)?)
            .map(Signer::Stripe)
            .map_err(|error| error.to_string()),
        (Scheme::Standard, true) => PrivateKey::parse(&read(&SIGNING_KEY)?)
            .map(Signer::StandardPrivate)
            .map_err(|error| format!("{}: {error}", SIGNING_KEY.name)),
        (Scheme::Standard, false) => {
            // Parsed as the server parses it, so a list that also holds whpk_ keys signs too.
            let keys =
                Keys::parse(&read(&config::WEBHOOK_SECRET)?).map_err(|error| error.to_string())?;
            keys.secrets().map(Signer::Standard).ok_or_else(|| {
                format!(
                    "{} holds only whpk_ public keys, which cannot sign: use --private-key with \
                     the whsk_ key in {}",
                    config::WEBHOOK_SECRET.name,
                    SIGNING_KEY.name
                )
            })
        }
    }
}

/// The three Standard Webhooks header lines.
fn standard_lines(id: &str, timestamp: i64, signature: &str) -> String {
    format!("webhook-id: {id}\nwebhook-timestamp: {timestamp}\nwebhook-signature: {signature}\n")
}

fn random_source_error(error: &std::io::Error) -> String {
    format!("cannot read the system's random source: {error}")
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
