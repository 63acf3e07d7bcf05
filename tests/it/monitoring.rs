//! What operators plug the metrics into: the real `/metrics` passes `promtool check metrics`
//! and renders exactly the families the README lists, the alert rules in `deploy/prometheus` pass their `promtool test rules` unit tests, and
//! the rules and the Grafana dashboard use only documented metric names and the real limits.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use hooksink::limits::{BUFFERED_BYTES_MAX, QUEUE_LEN_MAX};

use crate::support::{self, EXAMPLE, Server};

fn deploy(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Runs `promtool` (Debian package `prometheus`; `.ci/run` installs it) with `stdin`.
fn promtool(args: &[&str], dir: &Path, stdin: &[u8]) -> Output {
    let mut child = Command::new("promtool")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("promtool: {e} (apt-get install prometheus)"));
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

#[track_caller]
fn assert_clean(output: &Output) {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert_eq!(stderr, "");
}

#[test]
fn promtool_accepts_the_metrics_exposition() {
    let url = support::fresh_database();
    let server = Server::start(&url, &[]);
    // Every family with values: an accepted event, a duplicate, a 401 and a 404.
    assert_eq!(
        support::post_webhook(server.addr(), "msg_m1", EXAMPLE).status,
        200
    );
    assert_eq!(
        support::post_webhook(server.addr(), "msg_m1", EXAMPLE).status,
        200
    );
    let unsigned = support::request(
        "POST",
        "/webhook",
        &[("content-type", "application/json")],
        b"{}",
    );
    assert_eq!(
        support::send_one(server.addr(), &support::closing(&unsigned)).status,
        401
    );
    assert_eq!(support::get(server.addr(), "/nowhere").status, 404);
    let metrics = support::get(server.addr(), "/metrics");
    assert_eq!(metrics.status, 200);
    let output = promtool(
        &["check", "metrics"],
        Path::new("."),
        metrics.body.as_bytes(),
    );
    assert_clean(&output);
    assert_eq!(String::from_utf8_lossy(&output.stdout), "");
}

/// The families the README's Observability section lists in its `GET /metrics` item.
fn documented_families(readme: &str) -> BTreeSet<String> {
    let section = &readme[readme.find("## Observability").unwrap()..];
    let item = &section[section.find("- `GET /metrics`").unwrap()..];
    let item = &item[..item[1..].find("\n- ").map_or(item.len(), |end| end + 1)];
    let names = metric_names(item, &BTreeSet::new());
    assert!(names.len() > 5, "no list found in {item:?}");
    names
}

#[test]
fn metrics_rendered_are_exactly_the_documented_families() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let documented = documented_families(&readme);
    let url = support::fresh_database();
    let server = Server::start(&url, &[]);
    let metrics = support::get(server.addr(), "/metrics");
    assert_eq!(metrics.status, 200);
    let rendered: BTreeSet<String> = metrics
        .body
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split(' ').next())
        .map(str::to_owned)
        .collect();
    let undocumented: Vec<_> = rendered.difference(&documented).collect();
    let missing: Vec<_> = documented.difference(&rendered).collect();
    assert!(
        undocumented.is_empty(),
        "rendered, not in README: {undocumented:?}"
    );
    assert!(
        missing.is_empty(),
        "in README, not rendered: {missing:?}\n{}",
        metrics.body
    );
}

#[test]
fn alert_rules_pass_their_unit_tests() {
    let dir = deploy("prometheus");
    let check = promtool(&["check", "rules", "hooksink-rules.yml"], &dir, b"");
    assert_clean(&check);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains("SUCCESS: 5 rules found"),
        "{check:?}"
    );
    assert_clean(&promtool(
        &["test", "rules", "hooksink-rules.test.yml"],
        &dir,
        b"",
    ));
}

#[test]
fn rule_and_dashboard_thresholds_are_the_limits() {
    let rules = read(&deploy("prometheus/hooksink-rules.yml"));
    for expected in [
        format!("hooksink_queued_events / {QUEUE_LEN_MAX} > 0.8"),
        format!("hooksink_buffered_bytes / {BUFFERED_BYTES_MAX} > 0.8"),
    ] {
        assert!(rules.contains(&expected), "rules lack {expected}");
    }
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&deploy("grafana/hooksink-dashboard.json"))).unwrap();
    let max = |title: &str| {
        let panels = dashboard["panels"].as_array().unwrap();
        let panel = panels.iter().find(|p| p["title"] == title).unwrap();
        panel["fieldConfig"]["defaults"]["max"].as_u64().unwrap()
    };
    assert_eq!(max("Writer queue"), QUEUE_LEN_MAX as u64);
    assert_eq!(max("Request bytes held"), BUFFERED_BYTES_MAX as u64);
}

/// The `hooksink_*` names in `text`, with histogram series suffixes folded into the family.
fn metric_names(text: &str, families: &BTreeSet<String>) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (start, _) in text.match_indices("hooksink_") {
        let name: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .filter_map(|suffix| name.strip_suffix(suffix))
            .find(|base| families.contains(*base))
            .map_or(name.clone(), str::to_owned);
        names.insert(family);
    }
    names
}

#[test]
fn rules_and_dashboard_use_only_documented_metrics_in_valid_promql() {
    let readme = read(&Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md"));
    let documented = metric_names(&readme, &BTreeSet::new());
    let rules = read(&deploy("prometheus/hooksink-rules.yml"));
    let dashboard_text = read(&deploy("grafana/hooksink-dashboard.json"));
    for (what, text) in [("rules", &rules), ("dashboard", &dashboard_text)] {
        let used = metric_names(text, &documented);
        let unknown: Vec<_> = used.difference(&documented).collect();
        assert!(unknown.is_empty(), "{what} use undocumented {unknown:?}");
    }
    // promtool checks PromQL only inside rule files: wrap each panel query as a recording rule.
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard_text).unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    let mut count = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap().replace("$job", ".*");
            let expr = expr.replace("$instance", ".*");
            file.push_str(&format!(
                "      - record: dashboard:query{count}\n        expr: {}\n",
                serde_json::Value::String(expr)
            ));
            count += 1;
        }
    }
    let dir = support::scratch_dir("dashboard-promql");
    std::fs::write(dir.join("queries.yml"), &file).unwrap();
    let check = promtool(&["check", "rules", "queries.yml"], &dir, b"");
    assert_clean(&check);
    assert!(
        String::from_utf8_lossy(&check.stdout).contains(&format!("SUCCESS: {count} rules found")),
        "{check:?}\n{file}"
    );
}
