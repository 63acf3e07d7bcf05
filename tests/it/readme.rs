//! The README's "Send a signed webhook" commands, run as written against a real server (only
//! the binary path and the server address are replaced), so the examples cannot go stale:
//! every `sh` block of the section runs, and what it prints is the `# {...}` answer lines
//! written under it.

use std::process::Command;

use crate::support::{self, SECRET, Server};

/// The `STRIPE_WEBHOOK_SECRET` of the server and of the commands.
const STRIPE_SECRET: &str = "whsec_hooksink_it_readme_stripe";
/// Printed between two blocks' output, so each block's answers can be told apart.
const SEPARATOR: &str = "--- next README block ---";

/// One `sh` block: its script and the answer lines documented under its commands.
struct Block {
    script: String,
    answers: Vec<String>,
}

/// The `sh` blocks of the README section `heading`, in order.
fn shell_blocks(readme: &str, heading: &str) -> Vec<Block> {
    let start = readme.find(heading).unwrap();
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| {
            let script = block[..block.find("```").unwrap()].to_owned();
            let answers = script
                .lines()
                .filter_map(|line| line.strip_prefix("# "))
                .filter(|answer| answer.starts_with('{'))
                .map(str::to_owned)
                .collect();
            Block { script, answers }
        })
        .collect()
}

/// Whether `actual` is the README's `expected` answer, where a `...` in `expected` stands
/// for the rest of an id that changes on every run (`msg_...`).
fn is_answer(expected: &str, actual: &str) -> bool {
    match expected.split_once("...") {
        None => actual == expected,
        Some((before, after)) => actual
            .strip_prefix(before)
            .and_then(|rest| rest.strip_suffix(after))
            .is_some_and(|id| {
                !id.is_empty()
                    && id
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
            }),
    }
}

#[test]
fn readme_send_commands_print_the_answers_under_them() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = shell_blocks(&readme, "## Send a signed webhook");
    for block in &blocks {
        assert!(
            !block.answers.is_empty(),
            "no answer under {}",
            block.script
        );
    }
    for scheme in ["/webhook", "/stripe"] {
        assert!(
            blocks.iter().any(|block| block.script.contains(scheme)),
            "no README block sends to {scheme}"
        );
    }
    let url = support::fresh_database();
    let server = Server::start(&url, &[("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)]);
    let scripts: Vec<&str> = blocks.iter().map(|block| block.script.as_str()).collect();
    let script = scripts
        .join(&format!("echo '{SEPARATOR}'\n"))
        .replace("cargo run -q --release --", env!("CARGO_BIN_EXE_hooksink"))
        .replace(
            "http://127.0.0.1:3000",
            &format!("http://{}", server.addr()),
        );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("WEBHOOK_SECRET", SECRET)
        .env("STRIPE_WEBHOOK_SECRET", STRIPE_SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}{stderr}");
    let printed: Vec<Vec<&str>> = stdout
        .split(&format!("{SEPARATOR}\n"))
        .map(|block| block.lines().collect())
        .collect();
    assert_eq!(printed.len(), blocks.len(), "{stdout}");
    for (block, printed) in blocks.iter().zip(&printed) {
        assert_eq!(
            printed.len(),
            block.answers.len(),
            "{}{stdout}",
            block.script
        );
        for (expected, actual) in block.answers.iter().zip(printed) {
            assert!(
                is_answer(expected, actual),
                "README says {expected}, the command printed {actual}"
            );
        }
    }
}

#[test]
fn an_answer_with_dots_matches_only_an_id_in_their_place() {
    let expected = r#"{"status":"accepted","id":"msg_..."}"#;
    assert!(is_answer(
        expected,
        r#"{"status":"accepted","id":"msg_18a2f_3c"}"#
    ));
    assert!(!is_answer(expected, r#"{"status":"accepted","id":"msg_"}"#));
    assert!(!is_answer(
        expected,
        r#"{"status":"duplicate","id":"msg_1"}"#
    ));
    assert!(!is_answer(
        expected,
        r#"{"status":"accepted","id":"msg_1","x":"y"}"#
    ));
    assert!(is_answer("{}", "{}"));
    assert!(!is_answer("{}", "{} "));
}
