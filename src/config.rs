//! Configuration from the environment, validated once at start-up.
//!
//! `Config::from_lookup` takes the environment as a function so tests can pass a table; every
//! error names the variable and the accepted range, and never echoes a secret.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::limits::{
    BODY_SIZE_DEFAULT, BODY_SIZE_MAX, CONNECTIONS_DEFAULT, CONNECTIONS_MAX,
    KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT, KEEP_ALIVE_IDLE_TIMEOUT_MAX, REQUEST_READ_TIMEOUT_DEFAULT,
    REQUEST_READ_TIMEOUT_MAX, TIMESTAMP_SKEW_SECS_DEFAULT, TIMESTAMP_SKEW_SECS_MAX,
};
use crate::signature::{SecretError, Secrets};

/// Most HTTP worker threads `WORKERS` may ask for.
pub const WORKERS_MAX: usize = 256;
/// Most writer threads (each holds one PostgreSQL connection) `DB_WRITERS` may ask for.
pub const DB_WRITERS_MAX: usize = 64;
/// Writer threads when `DB_WRITERS` is unset; chosen by measurement, see loadtest/README.md.
pub const DB_WRITERS_DEFAULT: usize = 2;

/// The variables `hooksink --help` lists: name, default, meaning.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "DATABASE_URL",
        "(private cluster)",
        "PostgreSQL URL; unset: start a private cluster in ./.hooksink/pgdata",
    ),
    (
        "LISTEN_ADDR",
        "0.0.0.0:3000",
        "address and port to listen on",
    ),
    (
        "WEBHOOK_SECRET",
        "(required)",
        "whsec_<base64> secrets, space or comma separated (rotation)",
    ),
    ("WORKERS", "CPU count", "HTTP worker threads, 1..=256"),
    (
        "DB_WRITERS",
        "2",
        "database writer threads and connections, 1..=64",
    ),
    (
        "MAX_BODY_BYTES",
        "65536",
        "largest accepted body, 1024..=1048576",
    ),
    (
        "SIGNATURE_TOLERANCE_SECS",
        "300",
        "accepted clock skew of webhook-timestamp, 1..=86400",
    ),
    (
        "REQUEST_TIMEOUT_SECS",
        "10",
        "time a request head and body get to arrive (else 408), 1..=300",
    ),
    (
        "IDLE_TIMEOUT_SECS",
        "60",
        "time an idle keep-alive connection stays open, 1..=3600",
    ),
    (
        "MAX_CONNECTIONS",
        "10000",
        "open connections; more are closed at once, 1..=100000",
    ),
    (
        "RUST_LOG",
        "info",
        "log filter: error, warn, info, debug, trace",
    ),
    (
        "LOG_FORMAT",
        "plain",
        "plain, or json for one JSON object per line",
    ),
];

/// The validated configuration.
pub struct Config {
    pub database_url: Option<String>,
    pub listen_addr: SocketAddr,
    pub secrets: Secrets,
    pub workers: usize,
    pub db_writers: usize,
    pub body_size_max: usize,
    pub tolerance_secs: i64,
    /// `REQUEST_TIMEOUT_SECS`: time a request's head and body get, from its first byte.
    pub request_timeout: Duration,
    /// `IDLE_TIMEOUT_SECS`: time an idle keep-alive connection stays open.
    pub idle_timeout: Duration,
    /// `MAX_CONNECTIONS`: open connections wanted; the descriptor limit may lower the cap.
    pub connections_max: usize,
}

/// A variable that could not be used.
#[derive(Debug, PartialEq, Eq)]
pub enum Error {
    Missing(&'static str),
    Invalid {
        name: &'static str,
        expected: &'static str,
    },
    Secret(SecretError),
}

impl Config {
    /// Reads every variable through `lookup` (normally `std::env::var`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let secret = lookup("WEBHOOK_SECRET").ok_or(Error::Missing("WEBHOOK_SECRET"))?;
        let secrets = Secrets::parse(&secret).map_err(Error::Secret)?;
        let listen = lookup("LISTEN_ADDR").unwrap_or_else(|| "0.0.0.0:3000".to_owned());
        let listen_addr = listen
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or(Error::Invalid {
                name: "LISTEN_ADDR",
                expected: "host:port, e.g. 0.0.0.0:3000",
            })?;
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Config {
            database_url: lookup("DATABASE_URL").filter(|url| !url.trim().is_empty()),
            listen_addr,
            secrets,
            workers: number(&lookup, "WORKERS", cpus, 1, WORKERS_MAX)?,
            db_writers: number(&lookup, "DB_WRITERS", DB_WRITERS_DEFAULT, 1, DB_WRITERS_MAX)?,
            body_size_max: number(
                &lookup,
                "MAX_BODY_BYTES",
                BODY_SIZE_DEFAULT,
                1024,
                BODY_SIZE_MAX,
            )?,
            tolerance_secs: number(
                &lookup,
                "SIGNATURE_TOLERANCE_SECS",
                TIMESTAMP_SKEW_SECS_DEFAULT,
                1,
                TIMESTAMP_SKEW_SECS_MAX,
            )?,
            request_timeout: seconds(
                &lookup,
                "REQUEST_TIMEOUT_SECS",
                REQUEST_READ_TIMEOUT_DEFAULT,
                REQUEST_READ_TIMEOUT_MAX,
            )?,
            idle_timeout: seconds(
                &lookup,
                "IDLE_TIMEOUT_SECS",
                KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT,
                KEEP_ALIVE_IDLE_TIMEOUT_MAX,
            )?,
            connections_max: number(
                &lookup,
                "MAX_CONNECTIONS",
                CONNECTIONS_DEFAULT,
                1,
                CONNECTIONS_MAX,
            )?,
        })
    }

    /// One line for the start-up log. Secrets are counted, never shown; the database URL is
    /// shown without its password.
    pub fn describe(&self) -> String {
        let database = self
            .database_url
            .as_deref()
            .map_or_else(|| "private cluster".to_owned(), redact_password);
        format!(
            "listen={} workers={} db_writers={} max_body_bytes={} signature_tolerance_secs={} \
             request_timeout_secs={} idle_timeout_secs={} max_connections={} secrets={} \
             database={}",
            self.listen_addr,
            self.workers,
            self.db_writers,
            self.body_size_max,
            self.tolerance_secs,
            self.request_timeout.as_secs(),
            self.idle_timeout.as_secs(),
            self.connections_max,
            self.secrets.len(),
            database,
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(name) => write!(f, "{name} is not set"),
            Error::Invalid { name, expected } => write!(f, "{name} must be {expected}"),
            Error::Secret(error) => write!(f, "{error}"),
        }
    }
}

fn number<T: std::str::FromStr + PartialOrd + Copy>(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: T,
    min: T,
    max: T,
) -> Result<T, Error> {
    let Some(text) = lookup(name) else {
        return Ok(default);
    };
    let expected = range_text(name);
    match text.trim().parse::<T>() {
        Ok(value) if value >= min && value <= max => Ok(value),
        _ => Err(Error::Invalid { name, expected }),
    }
}

/// A whole number of seconds in 1..=`max`, as a `Duration`.
fn seconds(
    lookup: &impl Fn(&str) -> Option<String>,
    name: &'static str,
    default: Duration,
    max: Duration,
) -> Result<Duration, Error> {
    number(lookup, name, default.as_secs(), 1, max.as_secs()).map(Duration::from_secs)
}

fn range_text(name: &str) -> &'static str {
    match name {
        "WORKERS" => "a whole number in 1..=256",
        "DB_WRITERS" => "a whole number in 1..=64",
        "MAX_BODY_BYTES" => "a whole number in 1024..=1048576",
        "SIGNATURE_TOLERANCE_SECS" => "a whole number in 1..=86400",
        "REQUEST_TIMEOUT_SECS" => "a whole number in 1..=300",
        "IDLE_TIMEOUT_SECS" => "a whole number in 1..=3600",
        "MAX_CONNECTIONS" => "a whole number in 1..=100000",
        _ => "a whole number in range",
    }
}

fn redact_password(url: &str) -> String {
    // postgres://user:password@host/db?password=x -> postgres://user:***@host/db?password=***
    let Some((scheme, rest)) = url.split_once("://") else {
        return "(key=value connection string)".to_owned();
    };
    let (location, query) = rest.split_once('?').unwrap_or((rest, ""));
    let location = match location.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => format!("{credentials}@{host}"),
        },
        None => location.to_owned(),
    };
    let query: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
            _ => pair.to_owned(),
        })
        .collect();
    if query.is_empty() {
        format!("{scheme}://{location}")
    } else {
        format!("{scheme}://{location}?{}", query.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[track_caller]
    fn check(vars: &[(&str, &str)], expected: Result<(), &str>) {
        let lookup = |name: &str| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        };
        let actual = Config::from_lookup(lookup)
            .map(|_| ())
            .map_err(|e| e.to_string());
        assert_eq!(actual, expected.map_err(str::to_owned), "{vars:?}");
    }

    #[test]
    fn variables() {
        let s = ("WEBHOOK_SECRET", SECRET);
        check(&[s], Ok(()));
        check(&[], Err("WEBHOOK_SECRET is not set"));
        check(
            &[s, ("WORKERS", "0")],
            Err("WORKERS must be a whole number in 1..=256"),
        );
        check(&[s, ("WORKERS", "1")], Ok(()));
        check(&[s, ("WORKERS", "256")], Ok(()));
        check(
            &[s, ("WORKERS", "257")],
            Err("WORKERS must be a whole number in 1..=256"),
        );
        check(
            &[s, ("WORKERS", "two")],
            Err("WORKERS must be a whole number in 1..=256"),
        );
        check(&[s, ("DB_WRITERS", "64")], Ok(()));
        check(
            &[s, ("DB_WRITERS", "65")],
            Err("DB_WRITERS must be a whole number in 1..=64"),
        );
        check(
            &[s, ("MAX_BODY_BYTES", "1023")],
            Err("MAX_BODY_BYTES must be a whole number in 1024..=1048576"),
        );
        check(&[s, ("MAX_BODY_BYTES", "1048576")], Ok(()));
        check(
            &[s, ("MAX_BODY_BYTES", "1048577")],
            Err("MAX_BODY_BYTES must be a whole number in 1024..=1048576"),
        );
        check(&[s, ("SIGNATURE_TOLERANCE_SECS", "86400")], Ok(()));
        check(
            &[s, ("SIGNATURE_TOLERANCE_SECS", "86401")],
            Err("SIGNATURE_TOLERANCE_SECS must be a whole number in 1..=86400"),
        );
        let request = "REQUEST_TIMEOUT_SECS must be a whole number in 1..=300";
        check(&[s, ("REQUEST_TIMEOUT_SECS", "1")], Ok(()));
        check(&[s, ("REQUEST_TIMEOUT_SECS", "300")], Ok(()));
        check(&[s, ("REQUEST_TIMEOUT_SECS", "0")], Err(request));
        check(&[s, ("REQUEST_TIMEOUT_SECS", "301")], Err(request));
        let idle = "IDLE_TIMEOUT_SECS must be a whole number in 1..=3600";
        check(&[s, ("IDLE_TIMEOUT_SECS", "1")], Ok(()));
        check(&[s, ("IDLE_TIMEOUT_SECS", "3600")], Ok(()));
        check(&[s, ("IDLE_TIMEOUT_SECS", "0")], Err(idle));
        check(&[s, ("IDLE_TIMEOUT_SECS", "3601")], Err(idle));
        let connections = "MAX_CONNECTIONS must be a whole number in 1..=100000";
        check(&[s, ("MAX_CONNECTIONS", "1")], Ok(()));
        check(&[s, ("MAX_CONNECTIONS", "100000")], Ok(()));
        check(&[s, ("MAX_CONNECTIONS", "0")], Err(connections));
        check(&[s, ("MAX_CONNECTIONS", "100001")], Err(connections));
        check(&[s, ("LISTEN_ADDR", "127.0.0.1:0")], Ok(()));
        check(
            &[s, ("LISTEN_ADDR", "nowhere")],
            Err("LISTEN_ADDR must be host:port, e.g. 0.0.0.0:3000"),
        );
    }

    #[test]
    fn malformed_secret_stops_start_up_without_echoing_it() {
        let lookup = |name: &str| (name == "WEBHOOK_SECRET").then(|| "notasecret".to_owned());
        let error = Config::from_lookup(lookup).err().unwrap().to_string();
        assert!(!error.contains("notasecret"), "{error}");
    }

    #[test]
    fn passwords_are_redacted_wherever_they_are() {
        let cases = [
            (
                "postgres://app:hunter2@db/events",
                "postgres://app:***@db/events",
            ),
            ("postgres://app@db/events", "postgres://app@db/events"),
            (
                "postgres://db/events?password=hunter2&sslmode=disable",
                "postgres://db/events?password=***&sslmode=disable",
            ),
            (
                "postgres://a:b@db/e?connect_timeout=2",
                "postgres://a:***@db/e?connect_timeout=2",
            ),
            ("host=db password=hunter2", "(key=value connection string)"),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_password(url), expected, "{url}");
        }
    }

    #[test]
    fn describe_hides_secrets_and_passwords() {
        let lookup = |name: &str| match name {
            "WEBHOOK_SECRET" => Some(SECRET.to_owned()),
            "DATABASE_URL" => Some("postgres://app:hunter2@db:5432/events".to_owned()),
            _ => None,
        };
        let line = Config::from_lookup(lookup).unwrap().describe();
        assert!(line.contains("postgres://app:***@db:5432/events"), "{line}");
        assert!(
            !line.contains("hunter2") && !line.contains("MfKQ9r8"),
            "{line}"
        );
    }
}
