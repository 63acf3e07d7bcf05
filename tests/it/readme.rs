//! The README's "Send a signed webhook" commands, run as written against a real server (only
//! the binary path and the server address are replaced), so the example cannot go stale.

use std::process::Command;

use crate::support::{self, SECRET, Server};

/// The `sh` blocks of the README section `heading`, in order.
fn shell_blocks(readme: &str, heading: &str) -> Vec<String> {
    let start = readme.find(heading).unwrap();
    let section = &readme[start + heading.len()..];
    let section = &section[..section.find("\n## ").unwrap_or(section.len())];
    section
        .split("```sh\n")
        .skip(1)
        .map(|block| block[..block.find("```").unwrap()].to_owned())
        .collect()
}

#[test]
fn readme_send_commands_give_accepted_then_duplicate() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let blocks = shell_blocks(&readme, "## Send a signed webhook");
    assert_eq!(blocks.len(), 2, "{blocks:?}");
    let url = support::fresh_database();
    let server = Server::start(&url, &[]);
    let script = blocks
        .join("\n")
        .replace("./target/release/hooksink", env!("CARGO_BIN_EXE_hooksink"))
        .replace(
            "http://127.0.0.1:3000",
            &format!("http://{}", server.addr()),
        );
    let output = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap())
        .env("WEBHOOK_SECRET", SECRET)
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stdout}{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{stdout}");
    assert!(
        lines[0].starts_with(r#"{"status":"accepted","id":"msg_"#),
        "{stdout}"
    );
    assert_eq!(
        lines[1..],
        [
            r#"{"status":"accepted","id":"msg_readme_retry"}"#,
            r#"{"status":"duplicate","id":"msg_readme_retry"}"#,
        ]
    );
    // Each answer line in the README is what the command printed.
    for line in &lines[1..] {
        assert!(
            readme.contains(&format!("# {line}\n")),
            "README lacks {line}"
        );
    }
}
