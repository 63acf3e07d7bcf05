//! The command line, run as an operator would.

use std::process::Command;

pub fn hooksink(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hooksink"));
    command.args(args).env_clear();
    for (name, value) in env {
        command.env(name, value);
    }
    command.output().unwrap()
}

#[test]
fn help_lists_every_variable() {
    let output = hooksink(&["--help"], &[]);
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    for name in [
        "DATABASE_URL",
        "LISTEN_ADDR",
        "WEBHOOK_SECRET",
        "WORKERS",
        "DB_WRITERS",
        "MAX_BODY_BYTES",
        "SIGNATURE_TOLERANCE_SECS",
        "REQUEST_TIMEOUT_SECS",
        "IDLE_TIMEOUT_SECS",
        "MAX_CONNECTIONS",
        "RUST_LOG",
        "LOG_FORMAT",
    ] {
        assert!(text.contains(name), "{name} missing from --help");
    }
}

#[test]
fn version_prints_the_crate_version() {
    let output = hooksink(&["--version"], &[]);
    assert!(output.status.success());
    let expected = format!("hooksink {}\n", env!("CARGO_PKG_VERSION"));
    assert_eq!(String::from_utf8(output.stdout).unwrap(), expected);
}

#[test]
fn malformed_secret_stops_start_up_with_a_clear_message() {
    let output = hooksink(&[], &[("WEBHOOK_SECRET", "not-a-secret")]);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.contains("WEBHOOK_SECRET entry 1 does not start with whsec_"),
        "{text}"
    );
    assert!(!text.contains("not-a-secret"), "{text}");
}

#[test]
fn sign_prints_standard_webhooks_headers() {
    let headers = sign_with(
        SECRET_ENV.1,
        &[
            "--id",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            "--timestamp",
            "1614265330",
        ],
        r#"{"test": 2432232314}"#,
    );
    let expected = [
        ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
        ("webhook-timestamp", "1614265330"),
        (
            "webhook-signature",
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        ),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
        .collect();
    assert_eq!(headers, expected);
}

#[test]
fn second_instance_on_a_taken_port_refuses_to_start() {
    // may binds with SO_REUSEPORT; without the check a second instance would share the port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let output = hooksink(
        &[],
        &[
            ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"),
            ("LISTEN_ADDR", &address),
            ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(
        text.contains(&format!("cannot listen on {address}")),
        "{text}"
    );
}

pub const SECRET_ENV: (&str, &str) = ("WEBHOOK_SECRET", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw");

#[test]
fn migrate_applies_once_and_check_config_reports_the_result() {
    let url = crate::support::fresh_database();
    let env = [SECRET_ENV, ("DATABASE_URL", url.as_str())];
    let check = hooksink(&["check-config"], &env);
    assert_eq!(check.status.code(), Some(0));
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(
        text.starts_with("configuration ok, 1 migration(s) pending"),
        "{text}"
    );
    let first = hooksink(&["migrate"], &env);
    assert_eq!(
        String::from_utf8(first.stdout).unwrap(),
        "migrations applied: 1\n"
    );
    let second = hooksink(&["migrate"], &env);
    assert_eq!(
        String::from_utf8(second.stdout).unwrap(),
        "migrations applied: 0\n"
    );
    let check = hooksink(&["check-config"], &env);
    assert_eq!(check.status.code(), Some(0));
    let text = String::from_utf8(check.stdout).unwrap();
    assert!(text.starts_with("configuration ok: "), "{text}");
    assert!(!text.contains("MfKQ9r8"), "{text}");
}

#[test]
fn check_config_fails_when_the_database_is_unreachable() {
    let env = [
        SECRET_ENV,
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
    ];
    let output = hooksink(&["check-config"], &env);
    assert_eq!(output.status.code(), Some(1));
    let text = String::from_utf8(output.stderr).unwrap();
    assert!(text.contains("cannot connect to the database"), "{text}");
}

#[test]
fn json_logs_are_one_object_per_line_and_bad_formats_stop_start_up() {
    // A taken port ends start-up right after the first log lines.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap().to_string();
    let env = [
        SECRET_ENV,
        ("LOG_FORMAT", "json"),
        ("DATABASE_URL", "postgres://postgres@127.0.0.1:1/none"),
        ("LISTEN_ADDR", address.as_str()),
    ];
    let output = hooksink(&[], &env);
    let text = String::from_utf8(output.stderr).unwrap();
    let first = text.lines().next().unwrap();
    let line: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(line["level"], "INFO", "{first}");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .starts_with("starting hooksink"),
        "{first}"
    );
    assert!(!text.contains("MfKQ9r8"), "{text}");
    let bad = hooksink(&[], &[SECRET_ENV, ("LOG_FORMAT", "xml")]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(
        String::from_utf8(bad.stderr)
            .unwrap()
            .contains("LOG_FORMAT must be plain or json")
    );
}

/// `hooksink sign` with `args` and `WEBHOOK_SECRET=secret` on `body`: its header lines.
fn sign_with(secret: &str, args: &[&str], body: &str) -> Vec<(String, String)> {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hooksink"))
        .arg("sign")
        .args(args)
        .env_clear()
        .env("WEBHOOK_SECRET", secret)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(body.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| {
            let (name, value) = line.split_once(": ").unwrap();
            (name.to_owned(), value.to_owned())
        })
        .collect()
}

/// POSTs `body` to /webhook with the header lines `hooksink sign` printed, as curl `-H @-` does.
fn post_signed(
    addr: std::net::SocketAddr,
    signed: &[(String, String)],
    body: &str,
) -> crate::support::Response {
    let mut headers: Vec<(&str, &str)> = signed
        .iter()
        .map(|(name, value)| (name.as_str(), value.as_str()))
        .collect();
    headers.push(("content-type", "application/json"));
    headers.push(("connection", "close"));
    let request = crate::support::request("POST", "/webhook", &headers, body.as_bytes());
    crate::support::send_one(addr, &request)
}

/// The warning a server started with a published secret prints.
const PUBLISHED_WARNING: &str = "WEBHOOK_SECRET includes the published secret from";

#[test]
fn secret_prints_a_fresh_key_the_server_accepts_without_warning() {
    let first = hooksink(&["secret"], &[]);
    let second = hooksink(&["secret"], &[]);
    assert_eq!(first.status.code(), Some(0));
    let secret = String::from_utf8(first.stdout).unwrap();
    let secret = secret.strip_suffix('\n').unwrap().to_owned();
    assert_ne!(String::from_utf8(second.stdout).unwrap().trim_end(), secret);
    // 32 random bytes in padded standard base64.
    let key = secret.strip_prefix("whsec_").unwrap();
    assert_eq!(key.len(), 44, "{secret}");
    assert!(key.ends_with('='), "{secret}");
    assert!(
        key.trim_end_matches('=')
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/'),
        "{secret}"
    );

    let url = crate::support::fresh_database();
    let server = crate::support::Server::start(&url, &[("WEBHOOK_SECRET", &secret)]);
    let body = crate::support::EXAMPLE;
    let headers = sign_with(&secret, &["--id", "msg_fresh_secret"], body);
    let response = post_signed(server.addr(), &headers, body);
    assert_eq!(response.status, 200, "{}", server.log_text());
    assert_eq!(response.json()["status"], "accepted");
    // The test secret signs nothing this server accepts.
    let other = crate::support::post_webhook(server.addr(), "msg_other", body);
    assert_eq!(other.status, 401);
    assert!(!server.log_text().contains(PUBLISHED_WARNING));
}

#[test]
fn a_published_secret_is_warned_about_at_start_up() {
    let url = crate::support::fresh_database();
    let fresh = String::from_utf8(hooksink(&["secret"], &[]).stdout).unwrap();
    let list = format!("{} {}", fresh.trim_end(), SECRET_ENV.1);
    let server = crate::support::Server::start(&url, &[("WEBHOOK_SECRET", &list)]);
    let log = server.log_text();
    assert!(
        log.contains(
            "WARN  hooksink] WEBHOOK_SECRET includes the published secret from the Standard \
             Webhooks specification's test vector: anyone can sign webhooks this server \
             accepts; make your own with `hooksink secret`"
        ),
        "{log}"
    );
    assert!(!log.contains("MfKQ9r8"), "{log}");
}

#[test]
fn sign_help_prints_help_and_exits_zero_without_a_secret() {
    let output = hooksink(&["sign", "--help"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(
        text.starts_with("usage: hooksink sign [--id ID] [--timestamp SECS] < body\n"),
        "{text}"
    );
    assert!(text.contains("--id ID"), "{text}");
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
}

#[test]
fn sign_and_the_server_name_the_missing_secret() {
    let sign = hooksink(&["sign"], &[]);
    let serve = hooksink(&[], &[]);
    assert_eq!(sign.status.code(), Some(1));
    assert_eq!(serve.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(sign.stderr).unwrap(),
        "hooksink: WEBHOOK_SECRET is not set\n"
    );
    // The server serves either endpoint, so it needs one of the two.
    assert_eq!(
        String::from_utf8(serve.stderr).unwrap(),
        "hooksink: neither WEBHOOK_SECRET (for /webhook) nor STRIPE_WEBHOOK_SECRET (for /stripe) \
         is set; set one or both\n"
    );
}

#[test]
fn sign_with_the_same_id_makes_a_duplicate() {
    let url = crate::support::fresh_database();
    let server = crate::support::Server::start(&url, &[]);
    let body = crate::support::EXAMPLE;
    let mut statuses = Vec::new();
    for _ in 0..2 {
        let headers = sign_with(SECRET_ENV.1, &["--id", "msg_readme_dup"], body);
        let response = post_signed(server.addr(), &headers, body);
        statuses.push((response.status, response.json()["status"].clone()));
    }
    assert_eq!(
        statuses,
        [(200, "accepted".into()), (200, "duplicate".into())]
    );
}

#[test]
fn shutdown_log_names_the_signal() {
    let url = crate::support::fresh_database();
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let mut server = crate::support::Server::start(&url, &[]);
        server.stop_with(signal);
        let status = server
            .wait_exit(std::time::Duration::from_secs(20))
            .unwrap();
        assert_eq!(status.code(), Some(0));
        // The log readers may trail the exit by a moment.
        let logged = crate::support::wait_until(std::time::Duration::from_secs(5), || {
            server.log_text().contains("] stopped")
        });
        let log = server.log_text();
        assert!(logged, "{log}");
        assert!(
            log.contains(&format!(
                "{name}: no new connections, finishing in-flight requests"
            )),
            "{log}"
        );
    }
}
