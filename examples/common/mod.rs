//! What every connlab example (and every `peers` binary) shares: one way to
//! read the command line, one way to print a duration, one median, and the
//! rule for choosing a PostgreSQL server.
//!
//! **How to use it in a new binary.** Declare `mod common;` (from `peers/`,
//! use `connlab_peers::common`), then start `main` with
//! `let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("this_file.rs"));`.
//! Ask for each option once, by name, with a one-line description:
//! `args.flag("--trace", "…")`, `args.value("--n N", 1000, "…")` (a default),
//! `args.opt::<String>("--url URL", "…")` (none by default),
//! `args.free::<String>("SQL", "…")` (a positional word), and reject bad
//! combinations with `args.check(condition, "message")`. The options many
//! binaries share have one spelling here: `args.backend()` (`--backend`),
//! `args.listen_addr(port)` (`--addr`), and [`Seconds`] for a time in
//! seconds; print every duration with [`show`]. Then call
//! `args.finish()`: it answers `--help`/`-h` (the file's `//!` header, which
//! already names the question, the command and what the reader will see,
//! then the options as declared) on stdout with exit 0, `--version` likewise,
//! and ends the program with exit 2 and the reason on stderr for an unknown
//! option, a missing or unparsable value, or a failed check. `from_env` also
//! restores `SIGPIPE`'s default so `example | head -1` ends quietly. Once
//! past `finish()`, return [`exit`]`(result)` from `main`: 0 on success, 1
//! with the error on stderr otherwise. Parse values with the type's own
//! `FromStr` (`Backend`, `SocketAddr`, `u64`), so its error says what was
//! expected.
//!
//! Why a module of our own and not `clap`, `lexopt` or `pico-args`: the rules
//! above are the part worth sharing, and each crate would still need this
//! wrapper to print the header as help and to exit with our codes; the
//! parsing under it is forty lines. See `docs/dependencies.md`.

// Each example uses a different part of this module, and each example is
// its own crate, so in any one of them the rest is unused.
#![allow(dead_code)]

use std::fmt;
use std::process::ExitCode;
use std::str::FromStr;
use std::time::Duration;

/// Exit status for a usage error (unknown option, bad value), as getopt
/// programs and `clap` use: distinct from 1, "ran and failed".
pub const USAGE_ERROR: u8 = 2;

/// The command line, consumed option by option. See the module docs.
pub struct Args {
    name: &'static str,
    header: &'static str,
    /// Words not yet taken by an option; `None` once taken.
    words: Vec<Option<String>>,
    /// Words after a `--`: positional, even if they start with `-`.
    rest: Vec<String>,
    /// `(spec, description)` of every option asked for, for `--help`.
    options: Vec<(String, String)>,
    /// The first problem found; reported by `finish`.
    error: Option<String>,
}

impl Args {
    /// Read `std::env::args()`. `name` is the program's name for messages
    /// (`env!("CARGO_CRATE_NAME")`), `source` its own text
    /// (`include_str!("this_file.rs")`), whose `//!` header is the help.
    pub fn from_env(name: &'static str, source: &'static str) -> Args {
        if let Err(e) = connlab::sys::signal::default_sigpipe() {
            eprintln!("{name}: {e} (a closed stdout will be an error, not a quiet exit)");
        }
        // args_os, not args: std::env::args() panics on a word that is not
        // UTF-8, and bad input gets an error here, never a panic.
        let mut bad = None;
        let words: Vec<String> = std::env::args_os()
            .skip(1)
            .filter_map(|w| w.into_string().map_err(|w| bad.get_or_insert(w)).ok())
            .collect();
        let mut args = Args::parse(name, source, words);
        if let Some(word) = bad {
            args.fail(format!("{word:?} is not UTF-8"));
        }
        args
    }

    /// The same from any list of words (for tests).
    pub fn parse(name: &'static str, source: &'static str, words: impl IntoIterator<Item = String>) -> Args {
        let mut all: Vec<String> = words.into_iter().collect();
        let rest = match all.iter().position(|w| w == "--") {
            Some(i) => {
                let rest = all.split_off(i + 1);
                all.pop();
                rest
            }
            None => Vec::new(),
        };
        Args {
            name,
            header: source,
            words: all.into_iter().map(Some).collect(),
            rest,
            options: Vec::new(),
            error: None,
        }
    }

    /// Is the flag present? (Taken wherever it appears.)
    pub fn flag(&mut self, name: &str, help: &str) -> bool {
        self.declare(name, help);
        let mut seen = false;
        for word in &mut self.words {
            if word.as_deref() == Some(name) {
                *word = None;
                seen = true;
            }
        }
        seen
    }

    /// `--name VALUE` or `--name=VALUE`, parsed, if given. `spec` is the
    /// name and a placeholder for the help (`"--n N"`). The last one wins.
    pub fn opt<T: FromStr>(&mut self, spec: &str, help: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        self.declare(spec, help);
        let name = spec.split_whitespace().next().unwrap_or(spec);
        let mut found = None;
        let mut i = 0;
        while i < self.words.len() {
            let Some(word) = self.words[i].clone() else {
                i += 1;
                continue;
            };
            if word == name {
                self.words[i] = None;
                match self.words.get_mut(i + 1).and_then(Option::take) {
                    Some(value) => found = Some(value),
                    None => self.fail(format!("{name} needs a value")),
                }
                i += 2;
                continue;
            }
            if let Some(value) = word.strip_prefix(name).and_then(|r| r.strip_prefix('=')) {
                found = Some(value.to_string());
                self.words[i] = None;
            }
            i += 1;
        }
        let text = found?;
        match text.parse() {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail(format!("{name} {text:?}: {e}"));
                None
            }
        }
    }

    /// Like [`Args::opt`], with a default when the option is absent (or bad:
    /// then `finish` reports it and exits).
    pub fn value<T: FromStr>(&mut self, spec: &str, default: T, help: &str) -> T
    where
        T::Err: fmt::Display,
    {
        self.opt(spec, help).unwrap_or(default)
    }

    /// The next positional word (one not starting with `-`, or any word
    /// after `--`), parsed, if there is one. Call after every `opt`/`flag`,
    /// so that option values are not mistaken for it.
    pub fn free<T: FromStr>(&mut self, placeholder: &str, help: &str) -> Option<T>
    where
        T::Err: fmt::Display,
    {
        self.declare(placeholder, help);
        let slot = self
            .words
            .iter_mut()
            .find(|w| w.as_deref().is_some_and(|w| w == "-" || !w.starts_with('-')));
        let text = match slot {
            Some(word) => word.take()?,
            None if !self.rest.is_empty() => self.rest.remove(0),
            None => return None,
        };
        match text.parse() {
            Ok(value) => Some(value),
            Err(e) => {
                self.fail(format!("{placeholder} {text:?}: {e}"));
                None
            }
        }
    }

    /// `--backend epoll|poll|select`, epoll by default: the poller the
    /// reactor runs on.
    pub fn backend(&mut self) -> connlab::poller::Backend {
        let help = "the poller: epoll, poll or select (default epoll)";
        self.value("--backend B", connlab::poller::Backend::Epoll, help)
    }

    /// `--addr IP:PORT`, where a server listens: 127.0.0.1 and `port` by
    /// default (0: a free one the kernel picks).
    pub fn listen_addr(&mut self, port: u16) -> std::net::SocketAddr {
        let default = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        self.value(
            "--addr IP:PORT",
            default,
            &format!("where to listen (default {default})"),
        )
    }

    /// Record a usage error unless `ok` holds (for limits the type cannot
    /// express: `--backlog` must not be negative, and so on).
    pub fn check(&mut self, ok: bool, message: impl fmt::Display) {
        if !ok {
            self.fail(message.to_string());
        }
    }

    /// Answer `--help` and `--version`, or stop on the first usage error;
    /// otherwise return, and the program runs.
    pub fn finish(mut self) {
        let help = self.flag("-h", "") | self.flag("--help", "");
        let version = self.flag("--version", "");
        if help {
            print!("{}", self.help());
            std::process::exit(0);
        }
        if version {
            println!("{} {}", self.name, env!("CARGO_PKG_VERSION"));
            std::process::exit(0);
        }
        let unknown = self.words.iter().flatten().chain(&self.rest).next().cloned();
        if let Some(word) = unknown {
            let what = if word.starts_with('-') {
                "unknown option"
            } else {
                "unexpected argument"
            };
            self.fail(format!("{what} {word:?}"));
        }
        if let Some(error) = self.error {
            eprintln!("{}: {error}\ntry `{} --help`", self.name, self.name);
            std::process::exit(i32::from(USAGE_ERROR));
        }
    }

    /// The file's `//!` header without its code fences, then the options.
    pub fn help(&self) -> String {
        let mut text: String = self
            .header
            .lines()
            .take_while(|l| l.starts_with("//!"))
            .map(|l| l.trim_start_matches("//!").strip_prefix(' ').unwrap_or(""))
            .filter(|l| !l.starts_with("```"))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str("\nOptions:\n");
        let standard = [
            ("-h, --help", "print this help and exit"),
            ("--version", "print the version and exit"),
        ];
        let declared = self.options.iter().map(|(s, h)| (s.as_str(), h.as_str()));
        for (spec, help) in declared.filter(|(_, h)| !h.is_empty()).chain(standard) {
            text.push_str(&format!("  {spec:<24} {help}\n"));
        }
        text
    }

    fn declare(&mut self, spec: &str, help: &str) {
        self.options.push((spec.to_string(), help.to_string()));
    }

    fn fail(&mut self, message: String) {
        self.error.get_or_insert(message);
    }
}

/// `main`'s ending: exit 0 on success; on failure the error on stderr,
/// after the program's name, and exit 1.
pub fn exit<E: fmt::Display>(name: &str, result: Result<(), E>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A time given on the command line in seconds, fractions allowed
/// (`--duration 2.5`). Refuses what is not a number, negative, or longer
/// than [`Seconds::MAX`]: `Duration::from_secs_f64` would panic on a huge
/// value, and a far deadline overflows `Instant + Duration` in a timer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Seconds(pub Duration);

impl Seconds {
    /// One year: any longer and it is a typo, not a plan.
    pub const MAX: f64 = 365.0 * 24.0 * 3600.0;
}

impl FromStr for Seconds {
    type Err = String;

    fn from_str(text: &str) -> Result<Seconds, String> {
        let secs: f64 = text.parse().map_err(|e| format!("{e}"))?;
        if !(0.0..=Seconds::MAX).contains(&secs) {
            return Err(format!("expected seconds from 0 to {} (a year)", Seconds::MAX));
        }
        Ok(Seconds(Duration::from_secs_f64(secs)))
    }
}

/// A readiness mode as the command line spells it: `edge`, `level`,
/// `oneshot` (`--mode edge`).
pub struct ModeArg(pub connlab::poller::Mode);

impl FromStr for ModeArg {
    type Err = String;

    fn from_str(word: &str) -> Result<ModeArg, String> {
        use connlab::poller::Mode;
        match word {
            "edge" => Ok(ModeArg(Mode::Edge)),
            "level" => Ok(ModeArg(Mode::Level)),
            "oneshot" => Ok(ModeArg(Mode::OneShot)),
            _ => Err("expected edge, level or oneshot".to_string()),
        }
    }
}

/// A duration in the unit that suits it, to three significant figures:
/// `850 ns`, `12.3 µs`, `1.25 ms`, `2.00 s`. Every example prints time this
/// one way, so a reader can compare lines across them.
pub fn show(d: Duration) -> String {
    show_ns(d.as_secs_f64() * 1e9)
}

/// [`show`] for a time already in nanoseconds (criterion's unit).
pub fn show_ns(ns: f64) -> String {
    let (value, unit) = match ns {
        n if n < 1e3 => return format!("{n:.0} ns"),
        n if n < 1e6 => (n / 1e3, "µs"),
        n if n < 1e9 => (n / 1e6, "ms"),
        n => (n / 1e9, "s"),
    };
    let decimals = match value {
        v if v < 10.0 => 2,
        v if v < 100.0 => 1,
        _ => 0,
    };
    format!("{value:.decimals$} {unit}")
}

/// The middle sample (the upper middle for an even count); zero for none.
/// Medians, not means: one descheduled run on a busy machine would drag a
/// mean anywhere.
pub fn median(samples: &mut [Duration]) -> Duration {
    samples.sort_unstable();
    samples.get(samples.len() / 2).copied().unwrap_or_default()
}

/// A sysctl's value from `/proc/sys/<name>` (`net/ipv4/tcp_fin_timeout`),
/// its words joined by one space; `?` when unreadable.
pub fn sysctl(name: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/{name}")).map_or_else(
        |_| "?".to_string(),
        |s| s.split_whitespace().collect::<Vec<_>>().join(" "),
    )
}

/// A process's resident memory in kB, from `/proc/<pid>/status` (proc(5)).
pub struct MemoryKb {
    /// `VmRSS`: everything resident.
    pub rss: u64,
    /// `RssAnon`: private memory, the process's own cost.
    pub anon: u64,
    /// `RssFile`: mapped files (the binary and its libraries), shared.
    pub file: u64,
    /// `RssShmem`: shared memory it has touched (PostgreSQL's shared buffers).
    pub shmem: u64,
}

/// [`MemoryKb`] of process `pid`; `None` when the file is unreadable (another
/// user's process, a remote server) or a line is missing: the file is the
/// kernel's, but its shape is still checked, not assumed.
pub fn memory_kb(pid: i32) -> Option<MemoryKb> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(MemoryKb {
        rss: field("VmRSS:")?,
        anon: field("RssAnon:")?,
        file: field("RssFile:")?,
        shmem: field("RssShmem:")?,
    })
}

/// The PostgreSQL server an example talks to: `--url`, else `DATABASE_URL`,
/// else the `PG*` variables, else a throwaway cluster (the rule in
/// `testbed::choose`). Prints which; the cluster is returned so that it
/// lives, and is removed, with the caller.
pub fn choose_server(
    url: Option<String>,
) -> Result<(connlab::pg::config::Config, Option<connlab::testbed::Cluster>), String> {
    let chosen = connlab::testbed::choose(url).map_err(|e| format!("no PostgreSQL to talk to: {e}"))?;
    println!("server: {chosen}");
    Ok((chosen.config, chosen.cluster))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(words: &[&str]) -> Args {
        Args::parse(
            "t",
            "//! t: a test\n//! second line\nfn main() {}",
            words.iter().map(|w| w.to_string()),
        )
    }

    #[test]
    fn takes_options_in_both_spellings_and_positionals() {
        let mut a = args(&["--n", "5", "--url=pg://x", "--trace", "SELECT 1"]);
        assert_eq!(a.value("--n N", 1, "n"), 5);
        assert_eq!(a.opt::<String>("--url URL", "u").as_deref(), Some("pg://x"));
        assert!(a.flag("--trace", "t"));
        assert_eq!(a.free::<String>("SQL", "s").as_deref(), Some("SELECT 1"));
        assert!(a.error.is_none() && a.words.iter().all(Option::is_none));
    }

    #[test]
    fn bad_values_and_missing_values_are_errors() {
        let mut a = args(&["--n", "x"]);
        assert_eq!(a.value("--n N", 7, "n"), 7);
        assert!(a.error.as_deref().is_some_and(|e| e.contains("--n \"x\"")));
        let mut a = args(&["--n"]);
        assert_eq!(a.opt::<u32>("--n N", "n"), None);
        assert_eq!(a.error.as_deref(), Some("--n needs a value"));
    }

    #[test]
    fn words_after_double_dash_are_positional() {
        let mut a = args(&["--", "-- a comment"]);
        assert_eq!(a.free::<String>("SQL", "s").as_deref(), Some("-- a comment"));
        let mut a = args(&["--bogus"]);
        assert_eq!(a.free::<String>("SQL", "s"), None);
    }

    #[test]
    fn help_is_the_header_then_the_options() {
        let mut a = args(&[]);
        a.flag("--trace", "narrate");
        let help = a.help();
        assert!(help.starts_with("t: a test\nsecond line\n\nOptions:\n"));
        assert!(help.contains("--trace"));
    }

    #[test]
    fn seconds_refuse_what_would_panic() {
        assert_eq!("2.5".parse::<Seconds>(), Ok(Seconds(Duration::from_millis(2500))));
        for bad in ["1e19", "-1", "NaN", "inf", "x"] {
            assert!(bad.parse::<Seconds>().is_err(), "{bad}");
        }
    }

    #[test]
    fn durations_keep_three_figures() {
        assert_eq!(show(Duration::from_nanos(850)), "850 ns");
        assert_eq!(show(Duration::from_nanos(12_345)), "12.3 µs");
        assert_eq!(show(Duration::from_micros(1_250)), "1.25 ms");
        assert_eq!(show(Duration::from_millis(123)), "123 ms");
        assert_eq!(show(Duration::from_secs(2)), "2.00 s");
        assert_eq!(show_ns(1e3), "1.00 µs");
    }
}
