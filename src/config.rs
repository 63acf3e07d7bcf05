//! Configuration from the environment, validated once at start-up.
//!
//! Each variable is one `Variable` row (name, default, range, meaning) listed in `VARIABLES`;
//! parsing, error messages, `hooksink --help` and the README check all read that row, so adding
//! a variable means adding a row and the `Config` field it fills. `Config::from_lookup` takes
//! the environment as a function so tests can pass a table; every error names the variable and
//! the accepted range, and never echoes a secret.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use crate::limits::{
    BODY_SIZE_DEFAULT, BODY_SIZE_MAX, BODY_SIZE_MIN, CONNECTIONS_DEFAULT, CONNECTIONS_MAX,
    DB_WRITERS_DEFAULT, DB_WRITERS_MAX, KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT,
    KEEP_ALIVE_IDLE_TIMEOUT_MAX, REQUEST_READ_TIMEOUT_DEFAULT, REQUEST_READ_TIMEOUT_MAX,
    TIMESTAMP_SKEW_SECS_DEFAULT, TIMESTAMP_SKEW_SECS_MAX, WORKERS_MAX,
};
use crate::signature::standard::{Keys, SecretError};
use crate::signature::stripe;

/// One environment variable: the single statement of its name, default, range and meaning,
/// read by parsing, error messages, `hooksink --help` and the README check.
#[derive(Debug, PartialEq, Eq)]
pub struct Variable {
    pub name: &'static str,
    /// What applies when the variable is unset.
    pub default: Value,
    /// What a set value must be.
    pub accepts: Accepts,
    /// One line for `--help`.
    pub meaning: &'static str,
}

/// A default: a number, or a phrase for one that is computed or absent.
#[derive(Debug, PartialEq, Eq)]
pub enum Value {
    Number(u64),
    Text(&'static str),
}

/// The values a variable accepts.
#[derive(Debug, PartialEq, Eq)]
pub enum Accepts {
    /// A whole number in `min..=max`.
    Range { min: u64, max: u64 },
    /// `host:port`.
    Address,
    /// Text, checked by its own parser (secrets) or by the library that reads it.
    Text,
}

pub static DATABASE_URL: Variable = Variable {
    name: "DATABASE_URL",
    default: Value::Text("(private cluster)"),
    accepts: Accepts::Text,
    meaning: "PostgreSQL URL; unset: start a private cluster in ./.hooksink/pgdata",
};
pub static LISTEN_ADDR: Variable = Variable {
    name: "LISTEN_ADDR",
    default: Value::Text("0.0.0.0:3000"),
    accepts: Accepts::Address,
    meaning: "address and port to listen on",
};
pub static WEBHOOK_SECRET: Variable = Variable {
    name: "WEBHOOK_SECRET",
    default: Value::Text("unset: /webhook answers 404"),
    accepts: Accepts::Text,
    meaning: "whsec_ secrets and whpk_ public keys, space or comma separated; enables /webhook",
};
pub static STRIPE_WEBHOOK_SECRET: Variable = Variable {
    name: "STRIPE_WEBHOOK_SECRET",
    default: Value::Text("unset: /stripe answers 404"),
    accepts: Accepts::Text,
    meaning: "Stripe whsec_ endpoint secrets, space or comma separated; enables /stripe",
};
pub static WORKERS: Variable = Variable {
    name: "WORKERS",
    default: Value::Text("CPU count"),
    accepts: Accepts::Range {
        min: 1,
        max: WORKERS_MAX as u64,
    },
    meaning: "HTTP worker threads",
};
pub static DB_WRITERS: Variable = Variable {
    name: "DB_WRITERS",
    default: Value::Number(DB_WRITERS_DEFAULT as u64),
    accepts: Accepts::Range {
        min: 1,
        max: DB_WRITERS_MAX as u64,
    },
    meaning: "database writer threads and connections",
};
pub static MAX_BODY_BYTES: Variable = Variable {
    name: "MAX_BODY_BYTES",
    default: Value::Number(BODY_SIZE_DEFAULT as u64),
    accepts: Accepts::Range {
        min: BODY_SIZE_MIN as u64,
        max: BODY_SIZE_MAX as u64,
    },
    meaning: "largest accepted body",
};
pub static SIGNATURE_TOLERANCE_SECS: Variable = Variable {
    name: "SIGNATURE_TOLERANCE_SECS",
    default: Value::Number(TIMESTAMP_SKEW_SECS_DEFAULT as u64),
    accepts: Accepts::Range {
        min: 1,
        max: TIMESTAMP_SKEW_SECS_MAX as u64,
    },
    meaning: "accepted clock skew of webhook-timestamp",
};
pub static REQUEST_TIMEOUT_SECS: Variable = Variable {
    name: "REQUEST_TIMEOUT_SECS",
    default: Value::Number(REQUEST_READ_TIMEOUT_DEFAULT.as_secs()),
    accepts: Accepts::Range {
        min: 1,
        max: REQUEST_READ_TIMEOUT_MAX.as_secs(),
    },
    meaning: "time a request head and body get to arrive (else 408)",
};
pub static IDLE_TIMEOUT_SECS: Variable = Variable {
    name: "IDLE_TIMEOUT_SECS",
    default: Value::Number(KEEP_ALIVE_IDLE_TIMEOUT_DEFAULT.as_secs()),
    accepts: Accepts::Range {
        min: 1,
        max: KEEP_ALIVE_IDLE_TIMEOUT_MAX.as_secs(),
    },
    meaning: "time an idle keep-alive connection stays open",
};
pub static MAX_CONNECTIONS: Variable = Variable {
    name: "MAX_CONNECTIONS",
    default: Value::Number(CONNECTIONS_DEFAULT as u64),
    accepts: Accepts::Range {
        min: 1,
        max: CONNECTIONS_MAX as u64,
    },
    meaning: "open connections; more are closed at once",
};
pub static RUST_LOG: Variable = Variable {
    name: "RUST_LOG",
    default: Value::Text("info"),
    accepts: Accepts::Text,
    meaning: "log filter: error, warn, info, debug, trace",
};
pub static LOG_FORMAT: Variable = Variable {
    name: "LOG_FORMAT",
    default: Value::Text("plain"),
    accepts: Accepts::Text,
    meaning: "plain, or json for one JSON object per line",
};

/// Every variable, in the order `hooksink --help` lists them.
pub static VARIABLES: &[&Variable] = &[
    &DATABASE_URL,
    &LISTEN_ADDR,
    &WEBHOOK_SECRET,
    &STRIPE_WEBHOOK_SECRET,
    &WORKERS,
    &DB_WRITERS,
    &MAX_BODY_BYTES,
    &SIGNATURE_TOLERANCE_SECS,
    &REQUEST_TIMEOUT_SECS,
    &IDLE_TIMEOUT_SECS,
    &MAX_CONNECTIONS,
    &RUST_LOG,
    &LOG_FORMAT,
];

/// The validated configuration.
pub struct Config {
    pub database_url: Option<String>,
    pub listen_addr: SocketAddr,
    /// `WEBHOOK_SECRET`; `None` when unset (`/webhook` off).
    pub webhook_keys: Option<Keys>,
    /// `STRIPE_WEBHOOK_SECRET`; `None` when unset (`/stripe` off).
    pub stripe_secrets: Option<stripe::Secrets>,
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
    Missing(&'static Variable),
    /// Set, but not what `Variable::accepts` says.
    Invalid(&'static Variable),
    Secret(SecretError),
    StripeSecret(stripe::SecretError),
    /// Neither `WEBHOOK_SECRET` nor `STRIPE_WEBHOOK_SECRET`: no endpoint would accept events.
    NoSecret,
}

impl Config {
    /// Reads every variable through `lookup` (normally `std::env::var`).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config, Error> {
        let webhook_keys = lookup(WEBHOOK_SECRET.name)
            .map(|text| Keys::parse(&text).map_err(Error::Secret))
            .transpose()?;
        let stripe_secrets = lookup(STRIPE_WEBHOOK_SECRET.name)
            .map(|text| stripe::Secrets::parse(&text).map_err(Error::StripeSecret))
            .transpose()?;
        if webhook_keys.is_none() && stripe_secrets.is_none() {
            return Err(Error::NoSecret);
        }
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        Ok(Config {
            database_url: lookup(DATABASE_URL.name).filter(|url| !url.trim().is_empty()),
            listen_addr: LISTEN_ADDR.address(&lookup)?,
            webhook_keys,
            stripe_secrets,
            workers: WORKERS.number_or(&lookup, cpus as u64)?,
            db_writers: DB_WRITERS.number(&lookup)?,
            body_size_max: MAX_BODY_BYTES.number(&lookup)?,
            tolerance_secs: SIGNATURE_TOLERANCE_SECS.number(&lookup)?,
            request_timeout: Duration::from_secs(REQUEST_TIMEOUT_SECS.number(&lookup)?),
            idle_timeout: Duration::from_secs(IDLE_TIMEOUT_SECS.number(&lookup)?),
            connections_max: MAX_CONNECTIONS.number(&lookup)?,
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
             request_timeout_secs={} idle_timeout_secs={} max_connections={} webhook_keys={} \
             stripe_secrets={} database={}",
            self.listen_addr,
            self.workers,
            self.db_writers,
            self.body_size_max,
            self.tolerance_secs,
            self.request_timeout.as_secs(),
            self.idle_timeout.as_secs(),
            self.connections_max,
            self.webhook_keys.as_ref().map_or(0, Keys::len),
            self.stripe_secrets.as_ref().map_or(0, stripe::Secrets::len),
            database,
        )
    }
}

impl Variable {
    /// The whole number set in this variable, or its `Value::Number` default.
    fn number<T: TryFrom<u64>>(
        &'static self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<T, Error> {
        let Value::Number(default) = self.default else {
            unreachable!("{} has no numeric default", self.name);
        };
        self.number_or(lookup, default)
    }

    /// The whole number set in this variable, or `default` (one computed at start-up).
    fn number_or<T: TryFrom<u64>>(
        &'static self,
        lookup: &impl Fn(&str) -> Option<String>,
        default: u64,
    ) -> Result<T, Error> {
        let Accepts::Range { min, max } = self.accepts else {
            unreachable!("{} is not a number", self.name);
        };
        let value = match lookup(self.name) {
            None => default,
            Some(text) => match text.trim().parse::<u64>() {
                Ok(value) if (min..=max).contains(&value) => value,
                _ => return Err(Error::Invalid(self)),
            },
        };
        T::try_from(value).map_err(|_| Error::Invalid(self))
    }

    /// The socket address set in this variable, or its default.
    fn address(
        &'static self,
        lookup: &impl Fn(&str) -> Option<String>,
    ) -> Result<SocketAddr, Error> {
        let Value::Text(default) = self.default else {
            unreachable!("{} has no address default", self.name);
        };
        let text = lookup(self.name).unwrap_or_else(|| default.to_owned());
        text.to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or(Error::Invalid(self))
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(number) => write!(f, "{number}"),
            Value::Text(text) => f.write_str(text),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Missing(variable) => write!(f, "{} is not set", variable.name),
            Error::Invalid(variable) => match variable.accepts {
                Accepts::Range { min, max } => {
                    write!(
                        f,
                        "{} must be a whole number in {min}..={max}",
                        variable.name
                    )
                }
                Accepts::Address => write!(
                    f,
                    "{} must be host:port, e.g. {}",
                    variable.name, variable.default
                ),
                Accepts::Text => write!(f, "{} is not usable", variable.name),
            },
            Error::Secret(error) => write!(f, "{error}"),
            Error::StripeSecret(error) => write!(f, "{error}"),
            Error::NoSecret => write!(
                f,
                "neither {} (for /webhook) nor {} (for /stripe) is set; set one or both",
                WEBHOOK_SECRET.name, STRIPE_WEBHOOK_SECRET.name
            ),
        }
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
        let stripe = ("STRIPE_WEBHOOK_SECRET", "whsec_stripe_1 whsec_stripe_2");
        let neither = "neither WEBHOOK_SECRET (for /webhook) nor STRIPE_WEBHOOK_SECRET (for /stripe) is set; set one or both";
        check(&[s], Ok(()));
        check(&[stripe], Ok(()));
        check(&[s, stripe], Ok(()));
        check(
            &[(
                "WEBHOOK_SECRET",
                "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=",
            )],
            Ok(()),
        );
        check(&[], Err(neither));
        check(&[("RUST_LOG", "debug")], Err(neither));
        check(
            &[s, ("STRIPE_WEBHOOK_SECRET", "")],
            Err("STRIPE_WEBHOOK_SECRET holds no secret"),
        );
        check(
            &[stripe, ("WEBHOOK_SECRET", "")],
            Err("WEBHOOK_SECRET holds no secret"),
        );
        check(
            &[("STRIPE_WEBHOOK_SECRET", "sk_live_1")],
            Err("STRIPE_WEBHOOK_SECRET entry 1 does not start with whsec_"),
        );
        check(
            &[s, ("STRIPE_WEBHOOK_SECRET", &"whsec_x ".repeat(9))],
            Err("STRIPE_WEBHOOK_SECRET holds more than 8 secrets"),
        );
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

    /// The README's configuration table: one row per variable, with its default and range.
    #[test]
    fn readme_lists_every_variable_and_only_those() {
        let readme = include_str!("../README.md");
        let table = readme
            .split("## Configuration")
            .nth(1)
            .and_then(|section| section.split("\n## ").next())
            .unwrap();
        let rows: Vec<(&str, &str, &str)> = table
            .lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .map(|row| {
                let (name, rest) = row.split_once('`').unwrap();
                let cells: Vec<&str> = rest.split('|').map(str::trim).collect();
                (name, cells[1], cells[2])
            })
            .collect();
        let mut listed: Vec<&str> = rows.iter().map(|(name, _, _)| *name).collect();
        let mut known: Vec<&str> = VARIABLES.iter().map(|variable| variable.name).collect();
        listed.sort_unstable();
        known.sort_unstable();
        assert_eq!(listed, known, "README.md configuration table");
        for (name, default, bound) in rows {
            let variable = VARIABLES.iter().find(|v| v.name == name).unwrap();
            if let Value::Number(number) = variable.default {
                assert_eq!(default, number.to_string(), "README default of {name}");
            }
            if let Accepts::Range { min, max } = variable.accepts {
                let range = format!("{min}..={max}");
                assert!(bound.starts_with(&range), "README bound of {name}: {bound}");
            }
        }
    }

    #[test]
    fn malformed_secret_stops_start_up_without_echoing_it() {
        for variable in ["WEBHOOK_SECRET", "STRIPE_WEBHOOK_SECRET"] {
            let lookup = |name: &str| (name == variable).then(|| "notasecret".to_owned());
            let error = Config::from_lookup(lookup).err().unwrap().to_string();
            assert!(error.starts_with(variable), "{error}");
            assert!(!error.contains("notasecret"), "{error}");
        }
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
            "STRIPE_WEBHOOK_SECRET" => Some("whsec_stripe_hunter3".to_owned()),
            "DATABASE_URL" => Some("postgres://app:hunter2@db:5432/events".to_owned()),
            _ => None,
        };
        let line = Config::from_lookup(lookup).unwrap().describe();
        assert!(line.contains("postgres://app:***@db:5432/events"), "{line}");
        assert!(line.contains("webhook_keys=1 stripe_secrets=1"), "{line}");
        assert!(
            !line.contains("hunter") && !line.contains("MfKQ9r8"),
            "{line}"
        );
    }
}
