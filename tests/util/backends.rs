//! Which backends and modes a reactor test runs on, and how to name one
//! for a child process.

use connlab::poller::{Backend, Mode};
use connlab::reactor::Config;

/// Every backend. All three are built, so none is skipped: a backend that
/// cannot even register an eventfd must fail the tests, not leave them.
pub fn backends() -> Vec<Backend> {
    Backend::ALL.to_vec()
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
