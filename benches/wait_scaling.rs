//! wait_scaling: what one wait costs as the number of registered fds grows,
//! on select, poll and epoll; and what changing a registration costs.
//!
//! ```text
//! cargo bench --bench wait_scaling                      # about 2 minutes
//! cargo run --example plot_wait_scaling -- --out docs/img/wait_scaling.svg   # tables + the docs' chart
//! ```
//!
//! Groups, named after the comparison they make:
//!
//! - `wait/<backend>/<N>fds/<K>ready`: N fds registered (both ends of N/2
//!   socketpairs, level-triggered, readable interest), K of them readable,
//!   one wait with timeout 0. select stops at 1000 fds (FD_SETSIZE is 1024
//!   and the process already holds a few); poll and epoll go to 16,000.
//! - `wait/<backend>/1fd_numbered_1000/1ready`: one fd, made ready, but
//!   numbered 1000, so select's `nfds` is 1001. Set beside `1000fds/1ready`
//!   (a thousand fds registered) and `8fds/1ready`, it shows what select
//!   really pays for: the fds that are *set*, not the highest number.
//! - `wait/<backend>/1000fds/allready`: every fd ready, where O(ready) is
//!   O(N) too and epoll has nothing to skip.
//! - `ctl/<backend>/1000fds/add_del` and `.../modify`: one registration
//!   change with 1000 fds registered: an `epoll_ctl` syscall (two for
//!   add+del) against a write to poll's or select's user-space table.
//! - `churn/<backend>/64fds/<C>changes`: C interest changes then one wait,
//!   the pattern of a reactor that re-arms many fds every turn.
//!
//! Criterion keeps each estimate under `target/criterion/<group>/.../new/`;
//! the plot example reads them from there. Sample size and measurement time
//! are kept small so the whole run stays within a few minutes on a shared
//! 2-core machine; the medians are stable to a few percent at this size.

use std::hint::black_box;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

use connlab::poller::{Backend, Events, Interest, Mode, Poller, Token};
use connlab::sys::fd::{dup_at_least, raise_nofile_limit};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Registered-fd counts for poll and epoll. select stops at [`SELECT_MAX`].
const FD_COUNTS: [usize; 7] = [8, 64, 512, 1000, 4000, 8000, 16_000];
/// The most fds select can watch here: below FD_SETSIZE (1024), leaving room
/// for stdin/stdout/stderr and the fds criterion itself holds.
const SELECT_MAX: usize = 1000;
/// Ready fds per wait in the scaling groups.
const READY_COUNTS: [usize; 2] = [1, 5];
/// The number the lone fd of the `1fd_numbered_1000` case gets.
const HIGH_FD: i32 = 1000;
/// fds registered behind the registration-change benchmarks.
const CTL_FDS: usize = 1000;
/// fds registered in the churn benchmarks, and how many change per wait.
const CHURN_FDS: usize = 64;
const CHURN_CHANGES: [usize; 2] = [8, 64];
/// Extra fds the process needs besides the registered ones (stdio, the
/// epoll fd, criterion's files).
const FD_HEADROOM: u64 = 64;

/// A poller with `n` fds registered and some of them made readable.
struct Bed {
    poller: Box<dyn Poller>,
    /// `socks[2i]` and `socks[2i+1]` are the two ends of one socketpair;
    /// each is registered with its index as token.
    socks: Vec<UnixStream>,
    events: Events,
}

impl Bed {
    fn new(backend: Backend, n: usize) -> Bed {
        let mut poller = backend.open().expect("open poller");
        let mut socks = Vec::with_capacity(n);
        while socks.len() < n {
            let (a, b) = UnixStream::pair().expect("socketpair");
            socks.push(a);
            socks.push(b);
        }
        socks.truncate(n);
        for (i, s) in socks.iter().enumerate() {
            poller
                .add(s.as_raw_fd(), Token(i), Interest::READABLE, Mode::Level)
                .unwrap_or_else(|e| panic!("register fd #{i} of {n} on {backend}: {e}"));
        }
        Bed {
            poller,
            socks,
            events: Events::with_capacity(n.max(1)),
        }
    }

    /// Make `k` registered fds readable, spread across the set (not all at
    /// the front, where a scan would find them early): for each chosen fd,
    /// write one byte on the other end of its socketpair. Returns how many
    /// are ready, checked with a real wait.
    fn make_ready(&mut self, k: usize) -> usize {
        let n = self.socks.len();
        for j in 0..k.min(n) {
            let partner = (j * n / k) ^ 1;
            self.socks[partner].write_all(b"x").expect("write");
        }
        self.wait_now()
    }

    /// Make every registered fd readable: a byte in each direction.
    fn make_all_ready(&mut self) -> usize {
        for s in &mut self.socks {
            s.write_all(b"x").expect("write");
        }
        self.wait_now()
    }

    /// One readable fd, numbered [`HIGH_FD`] (or the lowest free number
    /// above), registered alone.
    fn one_high_fd(backend: Backend) -> (Bed, std::os::fd::OwnedFd) {
        let (mut a, b) = UnixStream::pair().expect("socketpair");
        let high = dup_at_least(b.as_raw_fd(), HIGH_FD).expect("fcntl(F_DUPFD_CLOEXEC, 1000)");
        assert!((HIGH_FD..1024).contains(&high.as_raw_fd()), "fd {}", high.as_raw_fd());
        let mut poller = backend.open().expect("open poller");
        poller
            .add(high.as_raw_fd(), Token(0), Interest::READABLE, Mode::Level)
            .expect("register the high fd");
        a.write_all(b"x").expect("write");
        let bed = Bed {
            poller,
            // `a` keeps the pair open; `b`'s duplicate is the one registered.
            socks: vec![a, b],
            events: Events::with_capacity(1),
        };
        (bed, high)
    }

    /// One wait with timeout 0: the operation being measured.
    fn wait_now(&mut self) -> usize {
        self.poller.wait(&mut self.events, Some(Duration::ZERO)).expect("wait")
    }
}

fn counts_for(backend: Backend, fd_limit: u64) -> Vec<usize> {
    FD_COUNTS
        .into_iter()
        .filter(|&n| backend != Backend::Select || n <= SELECT_MAX)
        .filter(|&n| n as u64 + FD_HEADROOM <= fd_limit)
        .collect()
}

fn wait_scaling(c: &mut Criterion) {
    let fd_limit = raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    if fd_limit < FD_COUNTS[FD_COUNTS.len() - 1] as u64 + FD_HEADROOM {
        eprintln!("wait_scaling: RLIMIT_NOFILE hard limit is {fd_limit}; larger fd counts are skipped");
    }
    for backend in Backend::ALL {
        let mut group = c.benchmark_group(format!("wait/{backend}"));
        for n in counts_for(backend, fd_limit) {
            for k in READY_COUNTS {
                let mut bed = Bed::new(backend, n);
                assert_eq!(bed.make_ready(k), k, "{backend} {n} fds: expected {k} ready");
                group.bench_function(BenchmarkId::new(format!("{n}fds"), format!("{k}ready")), |b| {
                    b.iter(|| black_box(bed.wait_now()))
                });
            }
        }
        let (mut bed, _high) = Bed::one_high_fd(backend);
        assert_eq!(bed.wait_now(), 1, "{backend}: the fd numbered {HIGH_FD} is ready");
        group.bench_function(BenchmarkId::new(format!("1fd_numbered_{HIGH_FD}"), "1ready"), |b| {
            b.iter(|| black_box(bed.wait_now()))
        });
        drop(bed);
        let mut bed = Bed::new(backend, CTL_FDS);
        assert_eq!(bed.make_all_ready(), CTL_FDS, "{backend}: expected all ready");
        group.bench_function(BenchmarkId::new(format!("{CTL_FDS}fds"), "allready"), |b| {
            b.iter(|| black_box(bed.wait_now()))
        });
        group.finish();
    }
}

fn registration_changes(c: &mut Criterion) {
    raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    for backend in Backend::ALL {
        let mut group = c.benchmark_group(format!("ctl/{backend}"));
        let mut bed = Bed::new(backend, CTL_FDS);
        let (extra, _peer) = UnixStream::pair().expect("socketpair");
        let fd = extra.as_raw_fd();
        let token = Token(CTL_FDS);
        group.bench_function(BenchmarkId::new(format!("{CTL_FDS}fds"), "add_del"), |b| {
            b.iter(|| {
                bed.poller.add(fd, token, Interest::READABLE, Mode::Level).expect("add");
                bed.poller.delete(fd).expect("delete");
            })
        });
        let fd = bed.socks[0].as_raw_fd();
        let mut interest = Interest::READABLE;
        group.bench_function(BenchmarkId::new(format!("{CTL_FDS}fds"), "modify"), |b| {
            b.iter(|| {
                interest = if interest == Interest::READABLE {
                    Interest::BOTH
                } else {
                    Interest::READABLE
                };
                bed.poller.modify(fd, Token(0), interest, Mode::Level).expect("modify");
            })
        });
        group.finish();
        // Close these 1000 fds before opening more: select needs the numbers
        // below 1024 again.
        drop(bed);

        let mut group = c.benchmark_group(format!("churn/{backend}"));
        let mut bed = Bed::new(backend, CHURN_FDS);
        bed.make_ready(1);
        let fds: Vec<_> = bed.socks.iter().map(|s| s.as_raw_fd()).collect();
        for changes in CHURN_CHANGES {
            group.bench_function(
                BenchmarkId::new(format!("{CHURN_FDS}fds"), format!("{changes}changes")),
                |b| {
                    b.iter(|| {
                        // Re-register with the same interest: the syscall (or
                        // table write) is paid, the readiness is unchanged.
                        for (i, &fd) in fds.iter().enumerate().take(changes) {
                            bed.poller
                                .modify(fd, Token(i), Interest::READABLE, Mode::Level)
                                .expect("modify");
                        }
                        black_box(bed.wait_now())
                    })
                },
            );
        }
        group.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
}

criterion_group! {
    name = benches;
    config = config();
    targets = wait_scaling, registration_changes
}
criterion_main!(benches);
