//! Log output: `env_logger` lines by default, one JSON object per line with `LOG_FORMAT=json`.
//!
//! Nothing here logs request bodies or secrets; callers log ids and error texts only.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::answer::write_json_escaped;

/// Filter used when `RUST_LOG` is unset: our info lines, only warnings from dependencies.
const DEFAULT_FILTER: &str = "info,may=warn,postgres=warn,tokio_postgres=warn";

/// Installs the logger; fails on an unknown `LOG_FORMAT`.
pub fn init() -> Result<(), String> {
    let json = match std::env::var("LOG_FORMAT").as_deref() {
        Err(_) | Ok("plain") => false,
        Ok("json") => true,
        Ok(_) => return Err("LOG_FORMAT must be plain or json".to_owned()),
    };
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(DEFAULT_FILTER));
    if json {
        builder.format(|out, record| {
            let mut line = Vec::with_capacity(128);
            line.extend_from_slice(b"{\"ts\":");
            line.extend_from_slice(epoch_millis_text().as_bytes());
            line.extend_from_slice(b",\"level\":\"");
            line.extend_from_slice(record.level().as_str().as_bytes());
            line.extend_from_slice(b"\",\"target\":\"");
            write_json_escaped(&mut line, record.target());
            line.extend_from_slice(b"\",\"message\":\"");
            write_json_escaped(&mut line, &record.args().to_string());
            line.extend_from_slice(b"\"}\n");
            out.write_all(&line)
        });
    }
    builder.init();
    Ok(())
}

/// Seconds since the epoch with milliseconds, e.g. `1795655114.123`.
fn epoch_millis_text() -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    format!("{}.{:03}", now.as_secs(), now.subsec_millis())
}
