//! Operator-facing text for a `postgres::Error`.
//!
//! The driver's own `Display` says only "db error" or "error connecting to server"; the cause
//! sits in `source()`. An operator needs the server's message and SQLSTATE, or the I/O cause
//! and the address that was tried. The connection settings go in separately because the error
//! does not carry them; the password is never among what is printed.

use std::error::Error as _;
use std::io;

use postgres::config::{Config, Host};

/// PostgreSQL's default port, used when the URL names none.
const DEFAULT_PORT: u16 = 5432;

/// `error` as one line: `password authentication failed for user "y" (SQLSTATE 28P01)`, or
/// `connection refused (127.0.0.1:5433)`.
pub fn describe(error: &postgres::Error, target: &Config) -> String {
    if let Some(db) = error.as_db_error() {
        let mut text = format!("{} (SQLSTATE {})", db.message(), db.code().code());
        if let Some(detail) = db.detail() {
            text.push_str(&format!("; {detail}"));
        }
        return text;
    }
    let cause = match io_cause(error) {
        Some(io) => io_text(io),
        None => chain(error),
    };
    format!("{cause} ({})", addresses(target))
}

/// `describe`, with the address tried also after a server's message (which names none):
/// `database "x" does not exist (SQLSTATE 3D000) (127.0.0.1:5433)`.
pub fn located(error: &postgres::Error, target: &Config) -> String {
    let text = describe(error, target);
    if error.as_db_error().is_some() {
        return format!("{text} ({})", addresses(target));
    }
    text
}

/// Where `target` connects: `host:port` for TCP, the socket path for a Unix socket.
pub fn addresses(target: &Config) -> String {
    let ports = target.get_ports();
    let port = |index: usize| {
        ports
            .get(index)
            .or(ports.first())
            .copied()
            .unwrap_or(DEFAULT_PORT)
    };
    let hosts = target.get_hosts();
    if hosts.is_empty() {
        return format!("localhost:{}", port(0));
    }
    let listed: Vec<String> = hosts
        .iter()
        .enumerate()
        .map(|(index, host)| match host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", port(index)),
            Host::Tcp(name) => format!("{name}:{}", port(index)),
            Host::Unix(dir) => format!("{}/.s.PGSQL.{}", dir.display(), port(index)),
        })
        .collect();
    listed.join(", ")
}

/// The first `io::Error` in the source chain, if the failure was a socket's.
fn io_cause(error: &postgres::Error) -> Option<&io::Error> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<io::Error>() {
            return Some(io);
        }
        source = cause.source();
    }
    None
}

/// The kind's own lowercase wording for the usual network failures ("connection refused"),
/// which reads better than the OS text with its `(os error 111)`; the full text otherwise.
fn io_text(error: &io::Error) -> String {
    use io::ErrorKind::*;
    match error.kind() {
        ConnectionRefused | ConnectionReset | ConnectionAborted | HostUnreachable
        | NetworkUnreachable | AddrNotAvailable | TimedOut | NotFound | PermissionDenied
        | BrokenPipe => error.kind().to_string(),
        _ => error.to_string(),
    }
}

/// The driver's text followed by each cause, for errors with no server or address to name
/// (`DATABASE_URL` that does not parse): `invalid connection string: unknown option `x``.
pub fn chain(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;

    #[track_caller]
    fn check(url: &str, expected: &str) {
        let target = Config::from_str(url).unwrap();
        assert_eq!(addresses(&target), expected);
    }

    #[test]
    fn addresses_name_every_host_and_its_port() {
        check("postgres://u:pw@127.0.0.1:5433/db", "127.0.0.1:5433");
        check("postgres://u@db.internal/db", "db.internal:5432");
        check("postgres://u@[::1]:6000/db", "[::1]:6000");
        check("postgres://u@a:1,b:2/db", "a:1, b:2");
        check("host=a,b port=7 user=u password=pw", "a:7, b:7");
        check(
            "host=/run/postgresql user=u",
            "/run/postgresql/.s.PGSQL.5432",
        );
        check("user=u password=pw", "localhost:5432");
    }

    #[test]
    fn a_refused_connection_names_the_address_and_no_password() {
        // Port 1 on loopback: nothing listens there, so the kernel refuses at once.
        let target = Config::from_str("postgres://u:hunter2@127.0.0.1:1/db").unwrap();
        let error = target.connect(postgres::NoTls).err().unwrap();
        assert_eq!(
            describe(&error, &target),
            "connection refused (127.0.0.1:1)"
        );
    }

    #[test]
    fn other_io_failures_keep_their_text() {
        let error = io::Error::other("failed to lookup address information");
        assert_eq!(io_text(&error), "failed to lookup address information");
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        assert_eq!(io_text(&refused), "connection refused");
    }
}
