//! The repository tree: run logs stay out of it (a stray `log5` was once committed).

use std::process::Command;

fn git(args: &[&str]) -> std::process::Output {
    Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap()
}

/// Whether `name` looks like a run log: `*.log`, or `log` followed by digits.
fn is_log(name: &str) -> bool {
    let base = name.rsplit('/').next().unwrap();
    base.ends_with(".log")
        || base
            .strip_prefix("log")
            .is_some_and(|rest| !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn run_logs_are_ignored_and_none_is_committed() {
    let tracked = git(&["ls-files"]);
    assert!(tracked.status.success(), "{tracked:?}");
    let tracked = String::from_utf8(tracked.stdout).unwrap();
    let logs: Vec<&str> = tracked.lines().filter(|name| is_log(name)).collect();
    assert!(logs.is_empty(), "committed logs: {logs:?}");
    let ignored = git(&[
        "check-ignore",
        "--no-index",
        "log5",
        "server.log",
        "loadtest/run.log",
    ]);
    assert_eq!(
        String::from_utf8(ignored.stdout).unwrap(),
        "log5\nserver.log\nloadtest/run.log\n"
    );
    assert!(!is_log("src/logging.rs") && is_log("log5") && is_log("a/b.log"));
}
