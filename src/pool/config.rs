//! `pool::config`: the knobs of a pool and why each default is what it is.
//!
//! Every default below is compared with three pools a reader may already run
//! (facts from their documentation and source; the sentences are ours):
//!
//! | knob | connlab | HikariCP (JVM) | asyncpg (Python) | deadpool (Rust) |
//! |---|---|---|---|---|
//! | max size | 10 | `maximumPoolSize` 10 | `max_size` 10 | physical cores × 4 (`num_cpus`, through 0.12) |
//! | min size (kept warm) | 2 | `minimumIdle` = max (fixed-size pool) | `min_size` 10 | none: grows on demand, never pre-opens |
//! | acquire timeout | 30 s | `connectionTimeout` 30 s | `timeout` on `acquire()`, none by default | `timeouts.wait` none |
//! | idle timeout | 10 min | `idleTimeout` 10 min | `max_inactive_connection_lifetime` 300 s | none |
//! | max lifetime | 30 min, minus up to 2.5 % jitter | `maxLifetime` 30 min, up to 2.5 % negative variance | none (`max_queries` 50 000 instead) | none |
//! | validation | on acquire if idle > 500 ms | `isValid()` if idle > 500 ms (`aliveBypassWindowMs`); `keepaliveTime` pings | none on acquire; `reset()` on release | `recycle()` on every get (`Fast`: no round trip) |
//! | leak detection | off | `leakDetectionThreshold` 0 (off) | none | none |
//!
//! The reasoning, knob by knob:
//!
//! - **max size 10**: HikariCP's and asyncpg's number. The right value is set by
//!   the *server* (each PostgreSQL connection is a forked process costing
//!   megabytes, and `max_connections` defaults to 100), not by the client's
//!   core count, which is why deadpool's `cores × 4` is not ours: on this
//!   2-core machine it would give 8, on a 64-core one 256.
//! - **min size 2**, not asyncpg's 10 or HikariCP's fixed pool: enough that the
//!   first requests after a lull skip the connection setup (the story's Q21),
//!   small enough that an idle service does not pin ten server processes.
//! - **acquire timeout 30 s**: HikariCP's. A finite default, because the worst
//!   pool bug, a leak, otherwise shows up as requests hanging forever instead
//!   of as errors that name the problem (deadpool's "no timeout" default is
//!   that hang).
//! - **idle timeout 10 min** (HikariCP) rather than asyncpg's 5: the cost of
//!   holding an idle connection is server memory, and ten minutes of a few
//!   megabytes is cheaper than re-paying the setup on a bursty load. Never
//!   trims below `min_size`.
//! - **max lifetime 30 min with jitter**: recycles server processes (memory
//!   growth, catalog caches, a DNS change) before an infrastructure timeout
//!   kills them mid-query. The jitter spreads a pool opened all at once so it
//!   does not reconnect all at once 30 minutes later.
//! - **validation on acquire after 500 ms idle**: HikariCP's bypass window. A
//!   connection used half a second ago is almost surely alive, so the hot
//!   path skips the round trip; one idle for longer pays about one loopback
//!   round trip (tens of µs; ~0.5 ms on a LAN) to avoid handing out a dead one.
//! - **leak threshold off**: a held connection is not always a leak (a long
//!   report query), so a false alarm by default would teach people to ignore
//!   it. Turn it on in tests and staging, as HikariCP advises.

use std::time::Duration;

/// How (and whether) the pool proves an idle connection still works before
/// handing it out. Each option trades a round trip for certainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Never ping. Fastest; a connection killed while idle (server restart,
    /// `pg_terminate_backend`, a firewall's idle timeout) is handed out and
    /// the caller's first query fails.
    None,
    /// Ping on acquire, but only a connection that sat idle longer than the
    /// bypass window. Costs one round trip on a cold connection and nothing
    /// on a hot one (HikariCP's strategy).
    OnAcquire {
        /// Skip the ping if the connection was used this recently.
        idle_longer_than: Duration,
    },
    /// The background task pings connections idle longer than `every`, so a
    /// dead one is replaced before anyone asks for it. Acquire never waits
    /// for a ping, but a connection can still die between two pings, and an
    /// idle pool sends a query per connection per period.
    Periodic {
        /// How long a connection may sit idle before the background task pings it.
        every: Duration,
    },
}

/// The default [`Validation`]'s bypass window: HikariCP's `aliveBypassWindowMs`.
pub const DEFAULT_VALIDATION_BYPASS: Duration = Duration::from_millis(500);

/// Up to this fraction of `max_lifetime` is taken off each connection's life
/// at random, so connections opened together are not recycled together
/// (HikariCP uses the same 2.5 %).
pub const MAX_LIFETIME_JITTER: f64 = 0.025;

/// A pool's configuration. Build it from [`Config::default`] and change what
/// you need:
///
/// ```
/// use std::time::Duration;
/// use connlab::pool::Config;
///
/// let config = Config {
///     max_size: 4,
///     acquire_timeout: Duration::from_secs(2),
///     ..Config::default()
/// };
/// assert_eq!(config.min_size, 2);
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    /// Connections kept open even when nobody uses them, replaced in the
    /// background when one dies. Clamped to `max_size`.
    pub min_size: usize,
    /// The hard ceiling: connections open plus being opened never exceed it.
    /// Callers beyond it wait in FIFO order.
    pub max_size: usize,
    /// How long `acquire()` may take in total (waiting for a slot, connecting,
    /// validating) before it fails with [`PoolError::Timeout`](super::PoolError::Timeout).
    /// Also the deadline of each background connect, reset and ping: past
    /// it, the connection is closed and its slot freed.
    pub acquire_timeout: Duration,
    /// Close a connection idle this long, unless that would leave fewer than
    /// `min_size`. `None`: never.
    pub idle_timeout: Option<Duration>,
    /// Close a connection this old when it is next idle (minus up to
    /// [`MAX_LIFETIME_JITTER`]). A checked-out connection is never taken
    /// from its holder. `None`: never.
    pub max_lifetime: Option<Duration>,
    /// See [`Validation`].
    pub validation: Validation,
    /// Report a connection held longer than this, with where it was acquired.
    /// `None`: off.
    pub leak_threshold: Option<Duration>,
    /// How often the background task wakes for its rounds (idle timeout, max
    /// lifetime, periodic validation, leak reports, replenishing to
    /// `min_size`). It is also woken at once when a connection is discarded or
    /// needs a reset. HikariCP's housekeeper runs every 30 s; ours is cheaper
    /// (a scan of at most `max_size` entries, no lock), so it runs every second.
    pub maintenance_interval: Duration,
    /// First pause after a failed connect inside `acquire()`; it doubles up to
    /// [`CONNECT_RETRY_MAX`] until the acquire timeout.
    pub connect_retry: Duration,
}

/// The longest pause between two connect attempts inside `acquire()`.
pub const CONNECT_RETRY_MAX: Duration = Duration::from_secs(1);

// ANCHOR: defaults
impl Default for Config {
    fn default() -> Config {
        Config {
            min_size: 2,
            max_size: 10,
            acquire_timeout: Duration::from_secs(30),
            idle_timeout: Some(Duration::from_secs(10 * 60)),
            max_lifetime: Some(Duration::from_secs(30 * 60)),
            validation: Validation::OnAcquire {
                idle_longer_than: DEFAULT_VALIDATION_BYPASS,
            },
            leak_threshold: None,
            maintenance_interval: Duration::from_secs(1),
            connect_retry: Duration::from_millis(10),
        }
    }
}
// ANCHOR_END: defaults

impl Config {
    /// `min_size` as the pool uses it: never above `max_size`.
    pub fn effective_min(&self) -> usize {
        self.min_size.min(self.max_size)
    }
}
