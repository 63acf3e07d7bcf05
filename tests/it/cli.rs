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
        text.starts_with(&format!(
            "configuration ok, {} migration(s) pending",
            crate::support::migration_count()
        )),
        "{text}"
    );
    let first = hooksink(&["migrate"], &env);
    assert_eq!(
        String::from_utf8(first.stdout).unwrap(),
        format!(
            "migrations applied: {}\n",
            crate::support::migration_count()
        )
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
    header_lines(&sign_output(
        args,
        &[("WEBHOOK_SECRET", secret)],
        body.as_bytes(),
    ))
}

/// `hooksink sign` with `args` and only `env`, `body` on stdin.
fn sign_output(args: &[&str], env: &[(&str, &str)], body: &[u8]) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(env!("CARGO_BIN_EXE_hooksink"))
        .arg("sign")
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // A refused run may exit before reading stdin; the pipe then breaks, which is its answer.
    let _ = child.stdin.take().unwrap().write_all(body);
    child.wait_with_output().unwrap()
}

/// The `name: value` lines of a successful run.
fn header_lines(output: &std::process::Output) -> Vec<(String, String)> {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    String::from_utf8(output.stdout.clone())
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
    let usage = "usage: hooksink sign [--scheme standard|stripe] [--id ID] [--private-key] \
                 [--timestamp SECS] < body\n";
    assert!(text.starts_with(usage), "{text}");
    for option in [
        "--scheme standard",
        "--scheme stripe",
        "--id ID",
        "--private-key",
        "--timestamp SECS",
        "WEBHOOK_SECRET",
        "STRIPE_WEBHOOK_SECRET",
        "WEBHOOK_SIGNING_KEY",
    ] {
        assert!(text.contains(option), "{option} missing: {text}");
    }
    assert_eq!(String::from_utf8(output.stderr).unwrap(), "");
    let help = String::from_utf8(hooksink(&["--help"], &[]).stdout).unwrap();
    assert!(
        help.contains("hooksink sign [--scheme standard|stripe]"),
        "{help}"
    );
    assert!(help.contains("hooksink keypair "), "{help}");
    assert!(
        help.contains("serve (POST /webhook, POST /stripe,\n"),
        "{help}"
    );
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

const STRIPE_SECRET: &str = "whsec_hooksink_test_secret_1";
const STRIPE_OTHER: &str = "whsec_hooksink_test_secret_2";
const STRIPE_BODY: &[u8] = b"{\n  \"id\": \"evt_1\",\n  \"object\": \"event\"\n}";

/// `stripe::verify` of `header` over `body` with `secrets` at `now`, default tolerance.
fn stripe_verify(
    secrets: &str,
    header: &str,
    body: &[u8],
    now: i64,
) -> Result<i64, hooksink::signature::Error> {
    use hooksink::signature::stripe;
    let secrets = stripe::Secrets::parse(secrets).unwrap();
    let lookup = |name: &str| (name == stripe::HEADER).then_some(header.as_bytes());
    stripe::verify(&secrets, lookup, body, now, 300)
}

#[test]
fn sign_stripe_prints_a_header_stripe_verification_accepts_for_that_body_only() {
    let env = [(
        "STRIPE_WEBHOOK_SECRET",
        &*format!("{STRIPE_SECRET},{STRIPE_OTHER}"),
    )];
    let t = 1_700_000_000;
    let output = sign_output(
        &["--scheme", "stripe", "--timestamp", "1700000000"],
        &env,
        STRIPE_BODY,
    );
    let lines = header_lines(&output);
    let [(name, value)] = &lines[..] else {
        panic!("{lines:?}")
    };
    assert_eq!(name, "Stripe-Signature");
    // The unit tests' value, which Stripe's own library checked, and what the helper the
    // /stripe endpoint tests use computes.
    let expected =
        "t=1700000000,v1=dbf2ac9b0c80f4b2e00c0d4559732e768fd9628ec4d07c9112155221ec49668f";
    assert_eq!(value, expected);
    assert_eq!(
        value,
        &crate::support::stripe_signature(STRIPE_SECRET, t, STRIPE_BODY)
    );
    let request = crate::support::stripe_request(STRIPE_BODY, STRIPE_SECRET, t);
    let request = String::from_utf8(request).unwrap();
    assert!(
        request.starts_with("POST /stripe HTTP/1.1\r\n"),
        "{request}"
    );
    assert!(
        request.contains(&format!("\r\nstripe-signature: {value}\r\n")),
        "{request}"
    );
    assert!(request.contains(&format!("\r\ncontent-length: {}\r\n", STRIPE_BODY.len())));
    assert!(
        request.contains("\r\ncontent-type: application/json\r\n"),
        "{request}"
    );
    use hooksink::signature::Error::NoValidSignature;
    assert_eq!(stripe_verify(STRIPE_SECRET, value, STRIPE_BODY, t), Ok(t));
    assert_eq!(
        stripe_verify(
            &format!("{STRIPE_OTHER} {STRIPE_SECRET}"),
            value,
            STRIPE_BODY,
            t
        ),
        Ok(t)
    );
    assert_eq!(
        stripe_verify(STRIPE_OTHER, value, STRIPE_BODY, t),
        Err(NoValidSignature)
    );
    let mut other_body = STRIPE_BODY.to_vec();
    other_body.push(b' ');
    assert_eq!(
        stripe_verify(STRIPE_SECRET, value, &other_body, t),
        Err(NoValidSignature)
    );
    // Without --timestamp, t is now.
    let now = crate::support::now();
    let lines = header_lines(&sign_output(&["--scheme", "stripe"], &env, STRIPE_BODY));
    let t = stripe_verify(STRIPE_SECRET, &lines[0].1, STRIPE_BODY, now).unwrap();
    assert!((t - now).abs() <= 5, "{t} vs {now}");
}

/// The published `v1a` vector: key pair from the Svix README, signature from the spec.
const WHSK: &str =
    "whsk_6Xb/dCcHpPea21PS1N9VY/NZW723CEc77N4rJCubMbfVKIDij2HKpMKkioLlX0dRqSKJp4AJ6p9lMicMFs6Kvg==";
const WHPK: &str = "whpk_1SiA4o9hyqTCpIqC5V9HUakiiaeACeqfZTInDBbOir4=";

/// `hooksink keypair`'s two keys, checking the exact shape of its output.
fn keypair() -> (String, String) {
    let output = hooksink(&["keypair"], &[]);
    assert_eq!(output.status.code(), Some(0));
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let [private, public] = lines[..] else {
        panic!("{text}")
    };
    let private = private.strip_prefix("WEBHOOK_SIGNING_KEY=").unwrap();
    let public = public.strip_prefix("WEBHOOK_SECRET=").unwrap();
    assert!(text.ends_with('\n'), "{text}");
    (private.to_owned(), public.to_owned())
}

/// Verifies Standard Webhooks header `lines` over `body` with the `WEBHOOK_SECRET` list `keys`.
fn standard_verify<'a>(
    keys: &str,
    lines: &'a [(String, String)],
    body: &[u8],
    now: i64,
) -> Result<&'a str, hooksink::signature::Error> {
    use hooksink::signature::standard;
    let keys = standard::Keys::parse(keys).unwrap();
    let lookup = |name: &str| {
        lines
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_bytes())
    };
    let delivery = standard::headers(lookup)?;
    standard::verify_delivery(&keys, &delivery, body, now, 300).map(|verified| verified.id)
}

#[test]
fn keypair_prints_two_matching_keys_and_sign_private_key_makes_v1a_they_verify() {
    use hooksink::signature::Error::NoValidSignature;
    use hooksink::signature::standard::{Keys, PrivateKey};
    let (private, public) = keypair();
    let (other_private, other_public) = keypair();
    assert_ne!(private, other_private);
    assert_eq!(PrivateKey::parse(&private).unwrap().public_key(), public);
    assert_eq!(Keys::parse(&public).unwrap().len(), 1);
    let body = br#"{"test": 2432232314}"#;
    let (id, ts) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", 1_614_265_330);
    let args = ["--private-key", "--id", id, "--timestamp", "1614265330"];
    // WEBHOOK_SECRET is not needed and not used.
    let env = [("WEBHOOK_SIGNING_KEY", private.as_str()), SECRET_ENV];
    let lines = header_lines(&sign_output(&args, &env, body));
    let names: Vec<&str> = lines.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        names,
        ["webhook-id", "webhook-timestamp", "webhook-signature"]
    );
    assert!(lines[2].1.starts_with("v1a,"), "{lines:?}");
    assert_eq!(standard_verify(&public, &lines, body, ts), Ok(id));
    assert_eq!(
        standard_verify(&format!("{} {public}", SECRET_ENV.1), &lines, body, ts),
        Ok(id)
    );
    assert_eq!(
        standard_verify(&other_public, &lines, body, ts),
        Err(NoValidSignature)
    );
    assert_eq!(
        standard_verify(SECRET_ENV.1, &lines, body, ts),
        Err(NoValidSignature)
    );
    assert_eq!(
        standard_verify(&public, &lines, br#"{"test": 2432232315}"#, ts),
        Err(NoValidSignature)
    );
    // The published vector, through the binary.
    let lines = header_lines(&sign_output(&args, &[("WEBHOOK_SIGNING_KEY", WHSK)], body));
    assert_eq!(
        lines[2].1,
        "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg=="
    );
    assert_eq!(standard_verify(WHPK, &lines, body, ts), Ok(id));
}

#[test]
fn sign_signs_v1_with_the_secrets_of_a_list_that_also_holds_public_keys() {
    let list = format!("{WHPK} {}", SECRET_ENV.1);
    let args = [
        "--id",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        "--timestamp",
        "1614265330",
    ];
    let headers = sign_with(&list, &args, r#"{"test": 2432232314}"#);
    assert_eq!(
        headers[2].1,
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

#[test]
fn sign_refuses_bad_keys_and_arguments_naming_the_variable_never_the_key() {
    let stripe = ["--scheme", "stripe"];
    let private = ["--private-key"];
    let no_v1a = "WEBHOOK_SECRET holds only whpk_ public keys, which cannot sign: use --private-key \
                  with the whsk_ key in WEBHOOK_SIGNING_KEY";
    let bad_private = "WEBHOOK_SIGNING_KEY: private key must be whsk_ and 64 bytes of standard \
                       base64 (seed, then public key)";
    let on_argv = "sign reads keys from the environment, never from arguments (other users see \
                   those in ps): set WEBHOOK_SECRET, STRIPE_WEBHOOK_SECRET or WEBHOOK_SIGNING_KEY";
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a str);
    #[rustfmt::skip]
    let cases: &[Case] = &[
        (&stripe, &[SECRET_ENV], "STRIPE_WEBHOOK_SECRET is not set"),
        (&stripe, &[("STRIPE_WEBHOOK_SECRET", "sk_live_Kq7secretvalue")], "STRIPE_WEBHOOK_SECRET entry 1 does not start with whsec_"),
        (&stripe, &[("STRIPE_WEBHOOK_SECRET", "whsec_Kq7secretvalue whsec_")], "STRIPE_WEBHOOK_SECRET entry 2 has an empty key after whsec_"),
        (&stripe, &[("STRIPE_WEBHOOK_SECRET", " , ")], "STRIPE_WEBHOOK_SECRET holds no secret"),
        (&private, &[SECRET_ENV], "WEBHOOK_SIGNING_KEY is not set"),
        (&private, &[("WEBHOOK_SIGNING_KEY", "whsec_Kq7secretvalue")], bad_private),
        (&private, &[("WEBHOOK_SIGNING_KEY", &WHSK.replace("6Xb/", "6Xc/"))], bad_private),
        (&[], &[("WEBHOOK_SECRET", "Kq7secretvalue")], "WEBHOOK_SECRET entry 1 does not start with whsec_ or whpk_"),
        (&[], &[("WEBHOOK_SECRET", WHPK)], no_v1a),
        (&["--scheme", "stripe", "--id", "msg_1"], &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)], "--id applies to --scheme standard only"),
        (&["--private-key", "--scheme", "stripe"], &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)], "--private-key applies to --scheme standard only"),
        (&["--scheme", "paypal"], &[SECRET_ENV], "--scheme takes standard or stripe"),
        (&["--scheme"], &[SECRET_ENV], "--scheme takes standard or stripe"),
        (&["--timestamp", "-"], &[SECRET_ENV], "--timestamp takes unix seconds"),
        (&["--private-key", "whsk_Kq7secretvalue"], &[], on_argv),
        (&["whsec_Kq7secretvalue"], &[SECRET_ENV], on_argv),
        (&["--key"], &[SECRET_ENV], "usage: hooksink sign [--scheme standard|stripe] [--id ID] [--private-key] [--timestamp SECS] < body"),
    ];
    for (args, env, message) in cases {
        let output = sign_output(args, env, b"{}");
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        assert_eq!(output.stdout, b"", "{args:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr, format!("hooksink: {message}\n"), "{args:?}");
        assert!(!stderr.contains("Kq7"), "{stderr}");
    }
    let too_long = vec![b' '; hooksink::limits::BODY_SIZE_MAX + 1];
    let output = sign_output(
        &stripe,
        &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)],
        &too_long,
    );
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(output.stdout, b"");
    assert_eq!(
        String::from_utf8(output.stderr).unwrap(),
        "hooksink: the body on stdin is longer than 1048576 bytes, the most hooksink accepts\n"
    );
    let at_limit = vec![b' '; hooksink::limits::BODY_SIZE_MAX];
    let output = sign_output(
        &stripe,
        &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)],
        &at_limit,
    );
    assert_eq!(header_lines(&output).len(), 1);
}
