//! Every example behaves like a Unix tool: `--help` prints its header on
//! stdout and exits 0, `--version` too, an unknown option or a bad value is
//! an error on stderr with exit status 2, a closed stdout (`example | head
//! -1`) ends it quietly (killed by SIGPIPE, or exit 0) instead of a panic,
//! and a failure is a non-zero exit.
//!
//! The examples are listed from `examples/*.rs`, so a new one is checked
//! without editing this file. They are built once (`cargo build
//! --examples`, a no-op after `cargo test` has built them) and run from the
//! target directory this test itself was built in, which follows
//! `CARGO_TARGET_DIR` and the profile. Examples that need PostgreSQL are
//! run in full only by the `psql` tests, on one shared throwaway server.
//!
//! The shared argument layer's own unit tests run here too (`common::tests`).

#[path = "../examples/common/mod.rs"]
mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use connlab::testbed::Cluster;

/// How each example is run in full for the closed-stdout check: arguments
/// that keep it to a second or two. Examples not listed (those that need
/// PostgreSQL, and new ones until they are added here) get `--help`,
/// `--version` and the bad-option checks only.
const QUICK_RUNS: &[(&str, &[&str])] = &[
    ("accept_queue", &["--backlog", "1", "--clients", "3"]),
    ("c10k", &["--conns", "100", "--busy-secs", "0.2"]),
    ("claims", &[]),
    ("connect", &["--timeout-ms", "100"]),
    ("echo_server", &["--addr", "127.0.0.1:0", "--duration", "0.2"]),
    ("load_balancer", &["--requests", "4"]),
    ("sockets", &[]),
    ("time_wait", &["--n", "20"]),
    ("what_is_fd", &["--no-wait"]),
];

/// SIGPIPE's number: a process killed by it ended the way `head` expects.
const SIGPIPE: i32 = 13;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Every example's name, from `examples/*.rs`.
fn example_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("examples"))
        .expect("examples/ is readable")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_suffix(".rs").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

/// `target/<profile>/examples`, built once for the whole test binary.
fn examples_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // This test runs as target/<profile>/deps/examples_cli-<hash>.
        let exe = std::env::current_exe().expect("current_exe");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let target_dir = profile_dir.parent().expect("target dir");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--examples", "--target-dir"])
            .arg(target_dir)
            .current_dir(root());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build --examples");
        assert!(status.success(), "cargo build --examples failed: {status}");
        profile_dir.join("examples")
    })
}

fn example(name: &str) -> Command {
    let mut cmd = Command::new(examples_dir().join(name));
    cmd.stdin(Stdio::null()).current_dir(root());
    cmd
}

fn run(name: &str, args: &[&str]) -> Output {
    example(name)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The first line of the example's `//!` header, as `--help` prints it.
fn header_first_line(name: &str) -> String {
    let source = std::fs::read_to_string(root().join("examples").join(format!("{name}.rs"))).unwrap();
    let first = source.lines().next().unwrap_or_default();
    first.trim_start_matches("//!").trim().to_string()
}

#[test]
fn help_prints_the_header_on_stdout_and_exits_0() {
    for name in example_names() {
        for flag in ["--help", "-h"] {
            let out = run(&name, &[flag]);
            let stdout = text(&out.stdout);
            assert_eq!(out.status.code(), Some(0), "{name} {flag}: {}", text(&out.stderr));
            assert!(
                stdout.starts_with(&header_first_line(&name)),
                "{name} {flag} should start with its header, printed:\n{stdout}"
            );
            assert!(stdout.contains("Options:"), "{name} {flag}: no options list");
        }
    }
}

#[test]
fn version_prints_the_name_and_exits_0() {
    for name in example_names() {
        let out = run(&name, &["--version"]);
        assert_eq!(out.status.code(), Some(0), "{name} --version");
        assert!(
            text(&out.stdout).contains(env!("CARGO_PKG_VERSION")),
            "{name} --version"
        );
    }
}

#[test]
fn an_unknown_option_is_an_error_on_stderr_with_exit_2() {
    for name in example_names() {
        let out = run(&name, &["--no-such-option"]);
        assert_eq!(out.status.code(), Some(2), "{name}: {}", text(&out.stderr));
        assert!(
            text(&out.stdout).is_empty(),
            "{name} printed to stdout: {}",
            text(&out.stdout)
        );
        assert!(
            text(&out.stderr).contains("--no-such-option"),
            "{name}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn bad_values_are_refused_with_exit_2_never_a_panic() {
    for (name, args) in [
        ("accept_queue", &["--backlog", "-3"][..]),
        ("accept_queue", &["--clients", "many"]),
        ("connect", &["--timeout-ms", "0"]),
        ("connect", &["--timeout-ms", "18446744073709551615"]),
        ("connect", &["--backend", "kqueue"]),
        ("echo_server", &["--duration", "1e19"]),
        ("echo_server", &["--duration", "NaN"]),
        ("echo_server", &["--mode", "sideways"]),
        ("time_wait", &["--n"]),
        ("psql", &["--frobnicate", "SELECT 1"]),
        ("tls", &["--rounds", "0"]),
        ("tls", &["--rounds", "many"]),
        ("pool_burst", &["--max", "0"]),
        ("pool_burst", &["--work-ms", "18446744073709551615"]),
    ] {
        let out = run(name, args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{name} {args:?}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(!text(&out.stderr).contains("panicked"), "{name} {args:?}");
    }
}

#[test]
fn a_word_that_is_not_utf8_is_a_usage_error_not_a_panic() {
    use std::os::unix::ffi::OsStrExt;
    let out = example("sockets")
        .arg(std::ffi::OsStr::from_bytes(b"--all\xff"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("not UTF-8"));
}

/// The harshest `head`: stdout is a pipe whose reader is already gone, so
/// the example's first line meets EPIPE.
fn run_with_closed_stdout(mut cmd: Command, what: &str) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{what}: {stderr}");
    let quiet = out.status.code() == Some(0) || out.status.signal() == Some(SIGPIPE);
    assert!(
        quiet,
        "{what} ended with {} after its stdout closed: {stderr}",
        out.status
    );
}

#[test]
fn a_closed_stdout_ends_the_example_quietly() {
    for (name, args) in QUICK_RUNS {
        run_with_closed_stdout(
            {
                let mut cmd = example(name);
                cmd.args(*args);
                cmd
            },
            name,
        );
    }
}

#[test]
fn quick_examples_run_to_the_end_with_exit_0() {
    for (name, args) in QUICK_RUNS {
        let out = run(name, args);
        assert_eq!(out.status.code(), Some(0), "{name} {args:?}: {}", text(&out.stderr));
    }
}

#[test]
fn plot_wait_scaling_writes_under_the_target_dir_and_help_writes_nothing() {
    let dir = std::env::temp_dir().join(format!("connlab-plot-{}", std::process::id()));
    let result = dir.join("criterion/wait/epoll/8fds/1ready/new");
    std::fs::create_dir_all(&result).unwrap();
    std::fs::write(result.join("benchmark.json"), r#"{"full_id":"wait/epoll/8fds/1ready"}"#).unwrap();
    std::fs::write(result.join("estimates.json"), r#"{"median":{"point_estimate":120.0}}"#).unwrap();

    let out = example("plot_wait_scaling")
        .env("CARGO_TARGET_DIR", &dir)
        .current_dir(&dir)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert!(!dir.join("--help").exists(), "--help wrote a file named --help");

    let out = example("plot_wait_scaling")
        .env("CARGO_TARGET_DIR", &dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(dir.join("wait_scaling.svg").exists(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("epoll"));

    let mut cmd = example("plot_wait_scaling");
    cmd.env("CARGO_TARGET_DIR", &dir);
    run_with_closed_stdout(cmd, "plot_wait_scaling");
    // Best effort: a leftover temp dir is harmless.
    let _ = std::fs::remove_dir_all(&dir);
}

fn psql(args: &[&str]) -> Output {
    let url = Cluster::shared().expect("a throwaway PostgreSQL").url();
    let mut all = vec!["--url", url.as_str()];
    all.extend_from_slice(args);
    run("psql", &all)
}

#[test]
fn psql_exits_1_with_the_error_on_stderr_when_a_statement_fails() {
    let out = psql(&["SELEC 1"]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("42601"), "{}", text(&out.stderr));
}

#[test]
fn psql_exits_0_when_the_statements_succeed() {
    let out = psql(&["SELECT 1 AS one"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("(1 row)"));
}

#[test]
fn psql_runs_sql_that_starts_with_a_dash_after_double_dash() {
    let out = psql(&["--", "-- a comment\nSELECT 2"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn psql_ends_quietly_when_its_stdout_closes() {
    let url = Cluster::shared().expect("a throwaway PostgreSQL").url();
    let mut cmd = example("psql");
    cmd.args(["--url", &url, "SELECT generate_series(1, 1000)"]);
    run_with_closed_stdout(cmd, "psql");
}
