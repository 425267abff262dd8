//! The live progress line, seen from outside: on a terminal (a pseudo-terminal made by
//! util-linux's `script`, 24 rows) it reserves the last row with a scroll region, draws
//! `[done/total]`, the ETA once durations are recorded, and gives the terminal back; piped,
//! in the terse or JSON format, under cargo-nextest or turned off, it draws nothing.
//! `RELIABILITY_PROGRESS=always` draws from the start and at least once, and a drawn line is
//! drawn a last time when the run ends, so no assertion depends on how long a test runs.

#![expect(clippy::unwrap_used, reason = "tests: a panic is the failure report")]

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_metrics-suite");

/// Runs the suite with `args` under a 24×100 pseudo-terminal (or piped) and returns all it wrote.
fn run(args: &str, env: &[(&str, &str)], out: &Path, terminal: bool) -> String {
    let transcript = out.join("transcript");
    let command = format!("stty rows 24 cols 100; exec {BIN} {args}");
    let mut cmd = match terminal {
        true => {
            let mut c = Command::new("script");
            c.args(["-qec", &command]).arg(&transcript);
            c
        }
        false => {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("exec {BIN} {args}")]);
            c
        }
    };
    for (key, _) in std::env::vars() {
        if key.starts_with("RELIABILITY_") || key.starts_with("NEXTEST") || key.starts_with("PROMETHEUS_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RELIABILITY_OUTPUT_DIR", out)
        .env("RELIABILITY_CONFIG", Path::new(env!("CARGO_MANIFEST_DIR")).join("reliability.toml"))
        .env("TERM", "xterm")
        .envs(env.iter().copied());
    let output = cmd.output().unwrap_or_else(|e| panic!("cannot run `script` (util-linux): {e}"));
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    match terminal {
        true => std::fs::read_to_string(&transcript).unwrap(),
        false => String::from_utf8_lossy(&output.stdout).into_owned(),
    }
}

/// Arguments, environment, and whether the run gets a terminal.
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, bool);

const REGION: &str = "\x1b[1;23r";
const GIVEN_BACK: &str = "\x1b7\x1b[r";

#[test]
fn a_terminal_gets_the_line_and_gets_its_screen_back() {
    let out = tempfile::tempdir().unwrap();
    let always = [("RELIABILITY_PROGRESS", "always")];
    let first = run("-k keeps_1mib", &always, out.path(), true);
    assert!(first.contains(REGION), "the last row is reserved: {first:?}");
    assert!(first.contains("\x1b[24;1H\x1b[2K[1/1]"), "drawn on row 24: {first:?}");
    assert!(first.contains(GIVEN_BACK), "the scroll region is reset: {first:?}");
    assert!(first.find(REGION) < first.find(GIVEN_BACK));
    assert!(!first.contains("ETA"), "no durations recorded yet: {first:?}");
    // The first run recorded durations: the second has an ETA.
    let second = run("-k keeps_1mib", &always, out.path(), true);
    assert!(second.contains("[1/1] ETA 0:00"), "{second:?}");
}

#[test]
fn nothing_is_drawn_off_a_terminal_or_when_it_must_not_be() {
    let out = tempfile::tempdir().unwrap();
    let always = ("RELIABILITY_PROGRESS", "always");
    let cases: Vec<Case<'_>> = vec![
        ("-k keeps_1mib", vec![always], false),
        ("-k keeps_1mib --format terse", vec![always], true),
        ("-k keeps_1mib -q", vec![always], true),
        ("-k keeps_1mib --format json -Z unstable-options", vec![always], true),
        ("-k keeps_1mib", vec![always, ("NEXTEST", "1")], true),
        ("-k keeps_1mib", vec![("RELIABILITY_PROGRESS", "off")], true),
        ("--list", vec![always], true),
    ];
    for (args, env, terminal) in cases {
        let seen = run(args, &env, out.path(), terminal);
        assert!(!seen.contains(REGION) && !seen.contains("\x1b7"), "{args} {env:?}: {seen:?}");
    }
}
