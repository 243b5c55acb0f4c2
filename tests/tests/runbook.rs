//! The deployment is real: every `beaconctl` command in deploy/RUNBOOK.md
//! parses (its subcommand and flags exist), every alert's runbook link
//! names a section there, and every systemd unit in deploy/systemd passes
//! `systemd-analyze verify` with the binaries it starts in place.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_path_buf()
}

/// Splits a shell line into words: quotes, a `#` comment, nothing else.
fn words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut started = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                started = true;
            }
            (None, '#') if !started => break,
            (None, c) if c.is_whitespace() => {
                if started {
                    words.push(std::mem::take(&mut word));
                    started = false;
                }
            }
            (None, c) => {
                word.push(c);
                started = true;
            }
        }
    }
    if started {
        words.push(word);
    }
    words
}

/// The `beaconctl` command lines of the runbook's code blocks, with
/// continued lines joined.
fn runbook_commands(text: &str) -> Vec<String> {
    let mut commands = Vec::new();
    let mut in_code = false;
    let mut pending: Option<String> = None;
    for line in text.lines() {
        if line.starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if !in_code {
            continue;
        }
        let line = line.trim();
        let (body, continued) = match line.strip_suffix('\\') {
            Some(body) => (body, true),
            None => (line, false),
        };
        let joined = match pending.take() {
            Some(before) => format!("{before} {body}"),
            None if body.starts_with("beaconctl ") => body.to_owned(),
            None => continue,
        };
        if continued {
            pending = Some(joined);
        } else {
            commands.push(joined);
        }
    }
    commands
}

#[test]
fn every_beaconctl_command_in_the_runbook_parses() {
    let text = std::fs::read_to_string(root().join("deploy/RUNBOOK.md")).expect("RUNBOOK.md");
    let commands = runbook_commands(&text);
    assert!(commands.len() >= 8, "the runbook's commands: {commands:?}");
    for command in commands {
        let mut args = words(&command);
        assert_eq!(args.remove(0), "beaconctl");
        // `--help` last: clap checks every flag before it, then prints the
        // subcommand's help instead of running it.
        args.push("--help".into());
        let output = Command::new(beacon_testkit::daemon::binary("beaconctl"))
            .args(&args)
            .output()
            .expect("run beaconctl");
        assert!(
            output.status.success(),
            "`{command}` does not parse: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[test]
fn every_alert_links_a_runbook_section() {
    let runbook = std::fs::read_to_string(root().join("deploy/RUNBOOK.md")).expect("RUNBOOK.md");
    let anchors: Vec<String> = runbook
        .lines()
        .filter_map(|l| l.strip_prefix("## "))
        .map(|title| {
            title
                .to_lowercase()
                .chars()
                .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-')
                .collect::<String>()
                .replace(' ', "-")
        })
        .collect();
    let rules =
        std::fs::read_to_string(root().join("deploy/prometheus/beacon.rules.yml")).expect("rules");
    let links: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("runbook: deploy/RUNBOOK.md#"))
        .collect();
    assert!(links.len() >= 10, "runbook links: {links:?}");
    for link in links {
        assert!(
            anchors.iter().any(|a| a == link),
            "no runbook section for #{link}; sections: {anchors:?}"
        );
    }
}

#[test]
fn every_systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("systemd-analyze is needed (Debian's systemd package)");
    }
    let units = root().join("deploy/systemd");
    // The units start /usr/local/bin/… with /etc/beacon/….env: checked
    // with those paths pointing at the built binaries and the shipped
    // environment files, as if installed.
    let installed = tempfile::tempdir().expect("an install");
    let bin = installed.path().join("bin");
    let etc = installed.path().join("etc");
    let system = installed.path().join("system");
    for dir in [&bin, &etc, &system] {
        std::fs::create_dir_all(dir).expect("dir");
    }
    let mut checked = Vec::new();
    for entry in std::fs::read_dir(&units).expect("deploy/systemd") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".service") else {
            continue;
        };
        let (binary, program, env) = match stem.strip_prefix("beacon-") {
            Some(daemon) => (
                beacon_testkit::daemon::binary(stem),
                stem.to_owned(),
                format!("{daemon}.env"),
            ),
            None => (
                beacon_testkit::nats::nats_server_bin(),
                "nats-server".to_owned(),
                "nats.env".to_owned(),
            ),
        };
        std::fs::copy(&binary, bin.join(&program)).expect("copy the binary");
        std::fs::copy(units.join("env").join(&env), etc.join(&env))
            .expect("an env file for every unit");
        let text = std::fs::read_to_string(&path).expect("read the unit");
        let text = text
            .replace("/usr/local/bin/", &format!("{}/", bin.display()))
            .replace("/etc/beacon/", &format!("{}/", etc.display()));
        let unit = system.join(name);
        std::fs::write(&unit, text).expect("write the unit");
        checked.push(unit);
    }
    assert_eq!(checked.len(), 9, "eight daemons and NATS");
    let output = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&checked)
        .output()
        .expect("systemd-analyze");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && text.trim().is_empty(),
        "systemd-analyze verify:\n{text}"
    );
}
