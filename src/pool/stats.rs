//! `pool::stats`: what the pool can tell you about itself.
//!
//! A snapshot ([`Stats`]) of the gauges (idle, active, waiting) and the
//! counters since the pool opened (created, closed by reason, timeouts), plus
//! wait-time percentiles over the most recent acquires that had to wait.
//! These are the numbers to watch in production: `waiting > 0` for long
//! means the pool is too small or a holder is slow; `active == max_size` with
//! low load means a leak (the story's Q21). Leak reports ([`LeakReport`])
//! are kept here too, with the counters the pool keeps for this snapshot.

use std::collections::VecDeque;
use std::fmt;
use std::panic::Location;
use std::time::Duration;

/// Why the pool closed a connection. Counted in [`Stats::closed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// Returned in a state [`Manager::check`](super::Manager::check) called broken.
    Broken,
    /// [`Manager::validate`](super::Manager::validate) failed (on acquire or in the background).
    ValidationFailed,
    /// [`Manager::reset`](super::Manager::reset) failed after a dirty release.
    ResetFailed,
    /// Idle longer than the idle timeout while the pool was above `min_size`.
    IdleTimeout,
    /// Older than its (jittered) max lifetime.
    MaxLifetime,
    /// Taken out of the pool by [`Pooled::detach`](super::Pooled::detach) or
    /// thrown away by [`Pooled::discard`](super::Pooled::discard).
    Detached,
    /// The pool was closed.
    PoolClosed,
}

impl CloseReason {
    /// Every reason, in [`ClosedCounts`] field order.
    pub const ALL: [CloseReason; 7] = [
        CloseReason::Broken,
        CloseReason::ValidationFailed,
        CloseReason::ResetFailed,
        CloseReason::IdleTimeout,
        CloseReason::MaxLifetime,
        CloseReason::Detached,
        CloseReason::PoolClosed,
    ];
}

/// Connections closed since the pool opened, by reason.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClosedCounts {
    /// See [`CloseReason::Broken`].
    pub broken: u64,
    /// See [`CloseReason::ValidationFailed`].
    pub validation_failed: u64,
    /// See [`CloseReason::ResetFailed`].
    pub reset_failed: u64,
    /// See [`CloseReason::IdleTimeout`].
    pub idle_timeout: u64,
    /// See [`CloseReason::MaxLifetime`].
    pub max_lifetime: u64,
    /// See [`CloseReason::Detached`].
    pub detached: u64,
    /// See [`CloseReason::PoolClosed`].
    pub pool_closed: u64,
}

impl ClosedCounts {
    /// The counter for one reason.
    pub fn get(&self, reason: CloseReason) -> u64 {
        match reason {
            CloseReason::Broken => self.broken,
            CloseReason::ValidationFailed => self.validation_failed,
            CloseReason::ResetFailed => self.reset_failed,
            CloseReason::IdleTimeout => self.idle_timeout,
            CloseReason::MaxLifetime => self.max_lifetime,
            CloseReason::Detached => self.detached,
            CloseReason::PoolClosed => self.pool_closed,
        }
    }

    pub(crate) fn bump(&mut self, reason: CloseReason) {
        let counter = match reason {
            CloseReason::Broken => &mut self.broken,
            CloseReason::ValidationFailed => &mut self.validation_failed,
            CloseReason::ResetFailed => &mut self.reset_failed,
            CloseReason::IdleTimeout => &mut self.idle_timeout,
            CloseReason::MaxLifetime => &mut self.max_lifetime,
            CloseReason::Detached => &mut self.detached,
            CloseReason::PoolClosed => &mut self.pool_closed,
        };
        *counter += 1;
    }

    /// All reasons together.
    pub fn total(&self) -> u64 {
        CloseReason::ALL.iter().map(|&r| self.get(r)).sum()
    }
}

/// How many leak reports [`Pool::leak_reports`](super::Pool::leak_reports)
/// keeps (the oldest are dropped).
pub const LEAK_REPORTS_KEPT: usize = 64;

/// A connection held too long, as reported by leak detection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeakReport {
    /// The pool's number for the connection (see [`Pooled::id`](super::Pooled::id)).
    pub conn_id: u64,
    /// Where `acquire()` was called (`#[track_caller]`).
    pub acquired_at: &'static Location<'static>,
    /// How long it had been held when reported.
    pub held_for: Duration,
}

impl fmt::Display for LeakReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "connection #{} acquired at {} has been held for {}: leaked?",
            self.conn_id,
            self.acquired_at,
            Short(self.held_for)
        )
    }
}

/// What has happened since the pool opened: the counters behind [`Stats`],
/// kept apart from the state that decides the pool's next step.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) acquires: u64,
    pub(crate) created: u64,
    pub(crate) connect_errors: u64,
    pub(crate) last_connect_error: Option<String>,
    pub(crate) closed: ClosedCounts,
    pub(crate) timeouts: u64,
    pub(crate) leaks: u64,
    pub(crate) leak_reports: VecDeque<LeakReport>,
    pub(crate) waits: WaitRecorder,
}

impl Counters {
    pub(crate) fn connect_failed(&mut self, why: String) {
        self.connect_errors += 1;
        self.last_connect_error = Some(why);
    }

    /// Keep `report`, dropping the oldest past [`LEAK_REPORTS_KEPT`].
    pub(crate) fn leaked(&mut self, report: LeakReport) {
        self.leaks += 1;
        if self.leak_reports.len() == LEAK_REPORTS_KEPT {
            self.leak_reports.pop_front();
        }
        self.leak_reports.push_back(report);
    }

    /// The counters, with the gauges the caller read from the state.
    pub(crate) fn snapshot(&self, idle: usize, active: usize, waiting: usize, max_size: usize) -> Stats {
        Stats {
            idle,
            active,
            waiting,
            max_size,
            acquires: self.acquires,
            created: self.created,
            connect_errors: self.connect_errors,
            closed: self.closed,
            timeouts: self.timeouts,
            leaks: self.leaks,
            wait: self.waits.percentiles(),
        }
    }
}

/// Wait-time percentiles over the last [`WAIT_SAMPLES`] acquires that waited
/// (queued for a slot or opened a connection). Acquires served straight from
/// the idle deque wait zero and are not sampled, so these describe the slow
/// path only; [`Stats::acquires`] counts both.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WaitTimes {
    /// How many waits the percentiles are computed over.
    pub samples: usize,
    /// Median.
    pub p50: Duration,
    /// 90th percentile.
    pub p90: Duration,
    /// 99th percentile.
    pub p99: Duration,
    /// Longest.
    pub max: Duration,
}

/// How many recent waits [`WaitTimes`] remembers. A ring of the last N exact
/// values, sorted on demand when stats are read, is simpler and exact where
/// a histogram (HdrHistogram, as HikariCP's metrics use) would be
/// approximate; the price is memory (N × 8 bytes) and an O(N log N) read.
pub const WAIT_SAMPLES: usize = 1024;

#[derive(Debug, Default)]
pub(crate) struct WaitRecorder {
    ring: Vec<Duration>,
    next: usize,
}

impl WaitRecorder {
    pub(crate) fn record(&mut self, waited: Duration) {
        if self.ring.len() < WAIT_SAMPLES {
            self.ring.push(waited);
        } else {
            self.ring[self.next] = waited;
        }
        self.next = (self.next + 1) % WAIT_SAMPLES;
    }

    pub(crate) fn percentiles(&self) -> WaitTimes {
        let mut sorted = self.ring.clone();
        sorted.sort_unstable();
        let at = |q: f64| -> Duration {
            // Nearest-rank percentile: the smallest sample with at least q of
            // the samples at or below it.
            let rank = (q * sorted.len() as f64).ceil() as usize;
            sorted.get(rank.saturating_sub(1)).copied().unwrap_or_default()
        };
        WaitTimes {
            samples: sorted.len(),
            p50: at(0.50),
            p90: at(0.90),
            p99: at(0.99),
            max: sorted.last().copied().unwrap_or_default(),
        }
    }
}

/// A snapshot of a pool, from [`Pool::stats`](super::Pool::stats).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections in the idle deque, ready to hand out.
    pub idle: usize,
    /// Slots in use: checked out, being opened, reset or validated.
    /// `idle + active` is the pool's size, never above `max_size`.
    pub active: usize,
    /// Acquires queued for a slot.
    pub waiting: usize,
    /// The configured ceiling.
    pub max_size: usize,
    /// Successful `acquire()` calls.
    pub acquires: u64,
    /// Connections opened.
    pub created: u64,
    /// Connect attempts that failed.
    pub connect_errors: u64,
    /// Connections closed, by reason.
    pub closed: ClosedCounts,
    /// Acquires that gave up at the acquire timeout.
    pub timeouts: u64,
    /// Connections reported as leaked (each report once).
    pub leaks: u64,
    /// Wait times of acquires that could not be served from the idle deque.
    pub wait: WaitTimes,
}

impl Stats {
    /// Connections open or being opened: `idle + active`.
    pub fn size(&self) -> usize {
        self.idle + self.active
    }
}

/// A duration rounded for people: `17.1µs`, `206.1ms`, `2.50s`.
pub(crate) struct Short(pub(crate) Duration);

impl fmt::Display for Short {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let us = self.0.as_secs_f64() * 1e6;
        if us < 1e3 {
            write!(f, "{us:.1}µs")
        } else if us < 1e6 {
            write!(f, "{:.1}ms", us / 1e3)
        } else {
            write!(f, "{:.2}s", us / 1e6)
        }
    }
}

impl fmt::Display for Stats {
    /// One line: `idle 3 active 7/10 waiting 2 | created 10 closed 0 timeouts 0 leaks 0 | wait p50 1.2ms p99 4.0ms`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "idle {} active {}/{} waiting {} | created {} closed {} timeouts {} leaks {} | wait p50 {} p99 {}",
            self.idle,
            self.active,
            self.max_size,
            self.waiting,
            self.created,
            self.closed.total(),
            self.timeouts,
            self.leaks,
            Short(self.wait.p50),
            Short(self.wait.p99)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let mut rec = WaitRecorder::default();
        for ms in 1..=100 {
            rec.record(Duration::from_millis(ms));
        }
        let w = rec.percentiles();
        assert_eq!(w.samples, 100);
        assert_eq!(w.p50, Duration::from_millis(50));
        assert_eq!(w.p90, Duration::from_millis(90));
        assert_eq!(w.p99, Duration::from_millis(99));
        assert_eq!(w.max, Duration::from_millis(100));
    }

    #[test]
    fn the_ring_keeps_only_the_most_recent_waits() {
        let mut rec = WaitRecorder::default();
        for _ in 0..WAIT_SAMPLES {
            rec.record(Duration::from_secs(9));
        }
        for _ in 0..WAIT_SAMPLES {
            rec.record(Duration::from_millis(1));
        }
        let w = rec.percentiles();
        assert_eq!(w.samples, WAIT_SAMPLES);
        assert_eq!(w.max, Duration::from_millis(1));
    }

    #[test]
    fn stats_print_on_one_line_with_rounded_waits() {
        let stats = Stats {
            idle: 3,
            active: 7,
            waiting: 2,
            max_size: 10,
            created: 10,
            wait: WaitTimes {
                p50: Duration::from_micros(1234),
                p99: Duration::from_nanos(17_140),
                ..WaitTimes::default()
            },
            ..Stats::default()
        };
        assert_eq!(
            stats.to_string(),
            "idle 3 active 7/10 waiting 2 | created 10 closed 0 timeouts 0 leaks 0 | wait p50 1.2ms p99 17.1µs"
        );
    }

    #[test]
    fn no_samples_give_zeros() {
        assert_eq!(WaitRecorder::default().percentiles(), WaitTimes::default());
    }

    #[test]
    fn closed_counts_index_by_reason() {
        let mut c = ClosedCounts::default();
        for (i, &r) in CloseReason::ALL.iter().enumerate() {
            for _ in 0..=i {
                c.bump(r);
            }
        }
        for (i, &r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(c.get(r), i as u64 + 1);
        }
        assert_eq!(c.total(), 28);
    }
}
