//! Shared vocabulary for the reactor and net tests: which backends to run
//! on, a seeded random generator, a checksum.

#![allow(dead_code)] // each test binary uses a different subset

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

/// xorshift64*: a tiny seeded generator, so a failing run can be replayed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let word = self.next_u64().to_le_bytes();
            chunk.copy_from_slice(&word[..chunk.len()]);
        }
    }
}

/// FNV-1a over a byte stream, fed in pieces as they arrive.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Checksum(u64);

impl Default for Checksum {
    fn default() -> Checksum {
        Checksum(0xcbf2_9ce4_8422_2325)
    }
}

impl Checksum {
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
