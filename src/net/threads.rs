//! One reactor per thread, each with its own poller, fed connections by
//! one of three [`ListenerKind`]s: `SO_REUSEPORT` listeners, one listener
//! shared with `EPOLLEXCLUSIVE`, or one shared without it (the thundering
//! herd). The echo server ([`super::echo::EchoThreads`]) and the HTTP
//! server (`http_connlab --threads` in `peers/`) both start their
//! threads here; each thread runs whatever server the caller gives it.
//!
//! Syscalls: `socket`, `setsockopt(SO_REUSEPORT)`, `bind`, `listen` per
//! thread, or one of each and `dup` (`fcntl(F_DUPFD_CLOEXEC)`) per extra
//! thread; `epoll_ctl(EPOLL_CTL_ADD, EPOLLEXCLUSIVE)`. See `socket(7)`
//! (`SO_REUSEPORT`) and `epoll_ctl(2)` (`EPOLLEXCLUSIVE`).
//!
//! Why threads that share nothing rather than one reactor handing work to
//! a pool: a connection then lives and dies on one core, its task and its
//! socket's records stay in that core's cache, and no lock sits on the
//! path of a byte. Redis (`io-threads` aside) and nginx (one worker process
//! per core) make the same choice; tokio's multi-threaded runtime instead
//! lets idle threads steal tasks, which balances load at the price of
//! moving connections between cores.

use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::thread;

use super::TcpListener;
use crate::reactor::Config;

/// How [`ReactorThreads`] feeds connections to its reactor threads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    /// One listening socket per thread on the same port (`SO_REUSEPORT`):
    /// the kernel hashes each connection's 4-tuple to one accept queue. No
    /// shared state, no herd; but the hash, not the load, picks the
    /// thread, and a connection queued on a busy thread waits for it.
    ReusePort,
    /// One listening socket, in every thread's epoll with `EPOLLEXCLUSIVE`:
    /// the kernel wakes one waiting thread per connection (sometimes more).
    /// One queue, so an idle thread takes the next connection. epoll only.
    Exclusive,
    /// One listening socket in every thread's poller, no flag: every
    /// connection wakes every waiting thread, one wins the `accept4`, the
    /// others find `EAGAIN` (the thundering herd, counted in
    /// `EchoReport::futile_wakeups`).
    Shared,
}

impl ListenerKind {
    /// Its command-line name.
    pub const fn name(self) -> &'static str {
        match self {
            ListenerKind::ReusePort => "reuseport",
            ListenerKind::Exclusive => "exclusive",
            ListenerKind::Shared => "shared",
        }
    }
}

impl fmt::Display for ListenerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ListenerKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ListenerKind, String> {
        match s {
            "reuseport" => Ok(ListenerKind::ReusePort),
            "exclusive" => Ok(ListenerKind::Exclusive),
            "shared" => Ok(ListenerKind::Shared),
            other => Err(format!(
                "unknown listener {other:?}: expected reuseport, exclusive or shared"
            )),
        }
    }
}

/// A stop signal any thread can give and every reactor thread can await.
///
/// A `Mutex` and not a channel: one bit and a few wakers, set once.
#[derive(Clone, Default)]
pub struct Stop {
    inner: Arc<StopInner>,
}

#[derive(Default)]
struct StopInner {
    stopped: AtomicBool,
    wakers: Mutex<Vec<Option<Waker>>>,
}

impl Stop {
    /// A signal not yet given.
    pub fn new() -> Stop {
        Stop::default()
    }

    /// Give it: every [`Stop::wait`] completes.
    pub fn trigger(&self) {
        self.inner.stopped.store(true, Ordering::SeqCst);
        let wakers = match self.inner.wakers.lock() {
            Ok(mut wakers) => std::mem::take(&mut *wakers),
            // A waiter panicked while holding the lock; the wakers are still valid.
            Err(poisoned) => std::mem::take(&mut *poisoned.into_inner()),
        };
        wakers.into_iter().flatten().for_each(Waker::wake);
    }

    /// Has it been given?
    pub fn is_triggered(&self) -> bool {
        self.inner.stopped.load(Ordering::SeqCst)
    }

    /// Completes once [`Stop::trigger`] has been called (from any thread).
    pub fn wait(&self) -> impl Future<Output = ()> + 'static {
        let inner = self.inner.clone();
        let mut slot = None;
        poll_fn(move |cx| {
            if inner.stopped.load(Ordering::SeqCst) {
                return Poll::Ready(());
            }
            let mut wakers = inner.wakers.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            let index = *slot.get_or_insert_with(|| {
                wakers.push(None);
                wakers.len() - 1
            });
            if let Some(place) = wakers.get_mut(index) {
                *place = Some(cx.waker().clone());
            }
            drop(wakers);
            // Checked again after storing the waker: a trigger in between
            // would otherwise be missed.
            if inner.stopped.load(Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}

impl fmt::Debug for Stop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stop").field("triggered", &self.is_triggered()).finish()
    }
}

/// A server on `threads` threads, each running its own reactor on its own
/// listening fd (see [`ListenerKind`]), each returning an `R` (its
/// counters) when it ends.
pub struct ReactorThreads<R> {
    addr: SocketAddr,
    stop: Stop,
    threads: Vec<thread::JoinHandle<io::Result<R>>>,
}

impl<R: Send + 'static> ReactorThreads<R> {
    /// Bind `addr` (port 0 picks one for all threads) and start `threads`
    /// threads named `name-0`, `name-1`, ...; each runs
    /// `serve(its listener, the stop signal)` to completion on its own
    /// reactor. The future is made on its thread, so it need not be `Send`
    /// (it may hold `Rc`s: a pool, a handler).
    ///
    /// Errors at once if the kind needs what the configuration lacks
    /// ([`ListenerKind::Exclusive`] needs epoll in edge mode) or if a
    /// socket cannot be bound; a thread that fails later stops the others.
    pub fn start<S, F>(
        config: Config,
        addr: SocketAddr,
        backlog: i32,
        threads: usize,
        kind: ListenerKind,
        name: &str,
        serve: S,
    ) -> io::Result<ReactorThreads<R>>
    where
        S: Fn(TcpListener, Stop) -> F + Clone + Send + 'static,
        F: Future<Output = io::Result<R>>,
    {
        let threads = threads.max(1);
        let mode = config.mode.unwrap_or(Config::default_mode(config.backend));
        let exclusive_ok = config.backend == crate::poller::Backend::Epoll && mode == crate::poller::Mode::Edge;
        if kind == ListenerKind::Exclusive && !exclusive_ok {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "--listener exclusive needs epoll in edge mode (EPOLLEXCLUSIVE), not {} in {mode:?} mode",
                    config.backend
                ),
            ));
        }
        let (fds, addr) = listening_fds(addr, backlog, threads, kind)?;
        let stop = Stop::new();
        let mut handles = Vec::with_capacity(threads);
        for (index, fd) in fds.into_iter().enumerate() {
            let (thread_stop, serve) = (stop.clone(), serve.clone());
            let spawned = thread::Builder::new().name(format!("{name}-{index}")).spawn(move || {
                let listener = match kind {
                    ListenerKind::Exclusive => TcpListener::from_fd_exclusive(fd),
                    ListenerKind::ReusePort | ListenerKind::Shared => TcpListener::from_fd(fd),
                };
                let result = config.block_on(serve(listener, thread_stop.clone())).and_then(|r| r);
                if result.is_err() {
                    thread_stop.trigger();
                }
                result
            });
            match spawned {
                Ok(handle) => handles.push(handle),
                Err(e) => {
                    stop.trigger();
                    return Err(io::Error::new(e.kind(), format!("spawning {name} thread {index}: {e}")));
                }
            }
        }
        Ok(ReactorThreads {
            addr,
            stop,
            threads: handles,
        })
    }

    /// The address every thread serves.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The signal that stops every thread; [`Stop::trigger`] it from anywhere.
    pub fn stopper(&self) -> Stop {
        self.stop.clone()
    }

    /// Wait for every thread to finish and return their results in thread
    /// order; the first error if any thread failed.
    pub fn join(self) -> io::Result<Vec<R>> {
        let mut results = Vec::with_capacity(self.threads.len());
        let mut first_error = None;
        for handle in self.threads {
            match handle.join() {
                Ok(Ok(result)) => results.push(result),
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(_) => {
                    first_error.get_or_insert(io::Error::other("a server thread panicked"));
                }
            }
        }
        match first_error {
            None => Ok(results),
            Some(e) => Err(e),
        }
    }
}

impl<R> fmt::Debug for ReactorThreads<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReactorThreads")
            .field("addr", &self.addr)
            .field("threads", &self.threads.len())
            .finish()
    }
}

/// One listening fd per thread: separate `SO_REUSEPORT` sockets on one
/// port, or duplicates (`dup`) of one socket.
fn listening_fds(
    addr: SocketAddr,
    backlog: i32,
    threads: usize,
    kind: ListenerKind,
) -> io::Result<(Vec<OwnedFd>, SocketAddr)> {
    let reuseport = kind == ListenerKind::ReusePort;
    let first = TcpListener::listen_fd(addr, backlog, reuseport)?;
    let bound = super::conn::inet(crate::sys::addr::getsockname(first.as_raw_fd())?)?;
    let mut fds = vec![first];
    for _ in 1..threads {
        let fd = if reuseport {
            TcpListener::listen_fd(bound, backlog, true)?
        } else {
            fds[0].try_clone()?
        };
        fds.push(fd);
    }
    Ok((fds, bound))
}
