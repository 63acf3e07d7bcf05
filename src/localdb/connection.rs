//! Talking to the cluster: connections and URLs for its superuser on 127.0.0.1.

use std::time::Duration;

use super::SUPERUSER;

pub(super) fn connect(port: u16, database: &str) -> Result<postgres::Client, postgres::Error> {
    postgres::Config::new()
        .host("127.0.0.1")
        .port(port)
        .user(SUPERUSER)
        .dbname(database)
        .connect_timeout(Duration::from_secs(2))
        .connect(postgres::NoTls)
}

/// A connection URL for `database` as the superuser on `port`: no password, none is needed.
pub(super) fn url(port: u16, database: &str) -> String {
    format!(
        "postgres://{SUPERUSER}@127.0.0.1:{port}/{}?connect_timeout=2",
        percent_encode(database)
    )
}

pub(super) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(super) fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}
