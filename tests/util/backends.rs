//! Which backends and modes a reactor test runs on, and how to name one
//! for a child process.

use std::os::fd::AsRawFd;

use connlab::poller::{Backend, Interest, Mode, Token};
use connlab::reactor::Config;

/// Every backend that can watch an fd on this machine. All three can on
/// any Linux; the probe is kept so that a backend the kernel refuses (a
/// seccomp filter that forbids `epoll_create1`, say) is skipped with a
/// note instead of failing every test.
pub fn backends() -> Vec<Backend> {
    Backend::ALL
        .into_iter()
        .filter(|&backend| {
            let works = backend.open().and_then(|mut poller| {
                let probe = connlab::sys::fd::eventfd()?;
                poller.add(probe.as_raw_fd(), Token(0), Interest::READABLE, Mode::Level)
            });
            if let Err(e) = &works {
                eprintln!("skipping backend {backend}: {e}");
            }
            works.is_ok()
        })
        .collect()
}

/// Every (backend, mode) pair the reactor can run: the default mode on each
/// backend (edge on epoll, level elsewhere), one-shot everywhere (native on
/// epoll, emulated by poll and select), and level on epoll.
pub fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for backend in backends() {
        out.push(Config::new(backend));
        out.push(Config::new(backend).mode(Mode::OneShot));
        if backend == Backend::Epoll {
            out.push(Config::new(backend).mode(Mode::Level));
        }
    }
    out
}

/// The same as text for a child process: `epoll:Level`.
pub fn config_name(config: &Config) -> String {
    format!(
        "{}:{:?}",
        config.backend,
        config.mode.unwrap_or(Config::default_mode(config.backend))
    )
}

/// The inverse of [`config_name`].
pub fn parse_config(text: &str) -> Config {
    let (backend, mode) = text.split_once(':').expect("backend:mode");
    let mode = match mode {
        "Edge" => Mode::Edge,
        "Level" => Mode::Level,
        "OneShot" => Mode::OneShot,
        other => panic!("unknown mode {other}"),
    };
    Config::new(backend.parse().expect("a backend name")).mode(mode)
}
