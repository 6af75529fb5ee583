//! An echo server as a library function, so the `echo_server` and `c10k`
//! examples, the tests and the peer comparison (`peers/`, against mio and
//! tokio) all run the very same code.
//!
//! One task per connection; the accepting task spawns them. A reset or an
//! error on one connection ends that task only; the server counts it and
//! goes on.
//!
//! # What a connection costs (Q26)
//!
//! An idle connection owns no buffer. Every connection reads into the
//! reactor thread's scratch buffer ([`reactor::with_scratch`]) and writes
//! the bytes straight back from there, in the same poll. Only bytes the
//! kernel would not take (the peer's receive window and our send buffer
//! are full) are copied into a `Vec` of the connection's own, and that
//! `Vec` is freed as soon as it has been sent. So memory follows the
//! bytes in flight, not the number of connections: an idle connection
//! costs its task and its socket's records in the reactor: about 750
//! bytes of the process's memory, measured at 19,000 connections in
//! `docs/c10k.md`.
//!
//! Alternatives not taken: a 64 KiB `Vec` per connection allocated at
//! accept (simplest, and what this server did: an earlier measurement
//! had 19,000 idle connections holding over 900 MB); a small
//! per-connection buffer that grows (mio's echo example; it still costs
//! something per idle connection and copies every byte once more); reading with `MSG_PEEK` and no buffer at all (a second
//! syscall per message).
//!
//! # Limits, and what happens at each
//!
//! | option | default | past it |
//! |---|---|---|
//! | [`EchoOptions::buffer_size`] | 64 KiB | the cap on a connection's unsent bytes: while any are unsent the server does not read from that client (backpressure: its bytes wait in the kernel, then TCP's window closes on it) |
//! | [`EchoOptions::write_stall_timeout`] | 30 s | unsent bytes and no write progress for that long: the connection is closed |
//! | [`EchoOptions::idle_timeout`] | off | no byte from the client for that long (with nothing unsent): closed |
//! | [`EchoOptions::max_open`] | none (the fd limit) | a new connection is accepted and closed at once, so its client hears a FIN instead of waiting in the accept queue |
//!
//! Why the idle timeout is off by default: an echo server is a lab
//! instrument, and holding thousands of silent connections is exactly
//! what the `c10k` example does with it; a connection that sends nothing
//! now costs about 750 bytes and one fd. A public server would set
//! it (nginx's `keepalive_timeout` is 75 s) and a connection cap below the
//! fd limit, because without both, one client that opens the fd limit's
//! worth of silent connections locks everyone else out.
//!
//! There is no separate slow-client timeout: an echo has no messages, so
//! a client that sends one byte a second is sending complete, tiny
//! requests, and each byte resets the idle timeout. A slow *reader* is
//! what can hurt the server (it makes us hold bytes), and the write-stall
//! timeout is its limit. A protocol with framing (HTTP's header timeout)
//! would add a deadline per message.
//!
//! # More than one core
//!
//! [`EchoThreads`] runs one reactor per thread, each with its own poller,
//! fed by one of three [`ListenerKind`]s (the machinery is
//! [`super::ReactorThreads`], which the HTTP server shares); `docs/c10k.md`
//! measures them.

use std::cell::Cell;
use std::fmt;
use std::future::{poll_fn, Future};
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::pin::pin;
use std::rc::Rc;
use std::task::{ready, Poll};
use std::time::Duration;

use super::threads::ReactorThreads;
pub use super::threads::{ListenerKind, Stop};
use super::{TcpListener, TcpStream};
use crate::reactor::{self, Config, JoinHandle};

/// How the server behaves. See the module's table of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoOptions {
    /// Stop accepting after this many connections, then return once they
    /// have all closed (`None`: serve until `stop`). Makes runs finite.
    /// With [`EchoThreads`], per thread.
    pub max_conns: Option<u64>,
    /// Bytes read per `read` call (at most [`reactor::SCRATCH_SIZE`]),
    /// which is also the most a connection can have unsent.
    pub buffer_size: usize,
    /// Set `TCP_NODELAY` on accepted connections.
    pub nodelay: bool,
    /// Connections open at once; more are accepted and closed at once.
    /// `None`: only the fd limit (`RLIMIT_NOFILE`) bounds them. With
    /// [`EchoThreads`], per thread.
    pub max_open: Option<usize>,
    /// Close a connection that has sent nothing for this long while we
    /// owe it nothing. `None` (the default): never.
    pub idle_timeout: Option<Duration>,
    /// Close a connection whose unsent bytes have not moved for this long
    /// (its client stopped reading). `None`: wait for ever.
    pub write_stall_timeout: Option<Duration>,
}

/// The read size, and so the cap on unsent bytes per connection: a 64 KiB
/// `read` drains a loopback socket's typical queue in one call.
pub const DEFAULT_BUFFER_SIZE: usize = reactor::SCRATCH_SIZE;

/// How long a client may leave our bytes unread before it is cut off.
/// Long enough for any live reader on a loaded machine (a full send buffer
/// drains in milliseconds on loopback), short enough that a client that
/// never reads gives back its fd and its 64 KiB within a minute.
pub const DEFAULT_WRITE_STALL_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for EchoOptions {
    fn default() -> EchoOptions {
        EchoOptions {
            max_conns: None,
            buffer_size: DEFAULT_BUFFER_SIZE,
            nodelay: true,
            max_open: None,
            idle_timeout: None,
            write_stall_timeout: Some(DEFAULT_WRITE_STALL_TIMEOUT),
        }
    }
}

/// What the server did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EchoReport {
    /// Connections accepted (including those refused at the cap).
    pub accepted: u64,
    /// Bytes echoed back, all connections together.
    pub bytes_echoed: u64,
    /// Connections that ended with an error (reset, ...) instead of EOF.
    pub failed: u64,
    /// Connections shed at accept because the process was out of fds.
    pub shed: u64,
    /// Connections closed at accept because [`EchoOptions::max_open`] were open.
    pub refused: u64,
    /// Connections closed by [`EchoOptions::idle_timeout`].
    pub idle_closed: u64,
    /// Connections closed by [`EchoOptions::write_stall_timeout`].
    pub stalled_closed: u64,
    /// Times the accepting task was woken after waiting on the listener.
    pub wakeups: u64,
    /// Of those, wake-ups that found no connection to accept (another
    /// thread had taken it: the thundering herd).
    pub futile_wakeups: u64,
    /// The most connections open at once.
    pub peak_open: u64,
    /// `size_of_val` of one connection's task (the future that is boxed
    /// for each connection: its stream, options, and the state of the
    /// echo loop); 0 if no connection was served.
    pub task_bytes: usize,
}

impl EchoReport {
    /// The sum of several threads' reports (`peak_open` summed too: an
    /// upper bound on the connections open at once across threads).
    pub fn total(reports: &[EchoReport]) -> EchoReport {
        let mut sum = EchoReport::default();
        for r in reports {
            sum.accepted += r.accepted;
            sum.bytes_echoed += r.bytes_echoed;
            sum.failed += r.failed;
            sum.shed += r.shed;
            sum.refused += r.refused;
            sum.idle_closed += r.idle_closed;
            sum.stalled_closed += r.stalled_closed;
            sum.wakeups += r.wakeups;
            sum.futile_wakeups += r.futile_wakeups;
            sum.peak_open += r.peak_open;
            sum.task_bytes = sum.task_bytes.max(r.task_bytes);
        }
        sum
    }

    /// Wake-ups of the accepting task per connection accepted: 1.0 when
    /// every wake-up found a connection, N when N threads woke for each.
    pub fn wakeups_per_accept(&self) -> f64 {
        self.wakeups as f64 / self.accepted.max(1) as f64
    }
}

impl fmt::Display for EchoReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} connection(s), {} bytes echoed, {} failed, {} shed at EMFILE",
            self.accepted, self.bytes_echoed, self.failed, self.shed
        )?;
        for (n, what) in [
            (self.refused, "refused at the cap"),
            (self.idle_closed, "closed idle"),
            (self.stalled_closed, "closed for not reading"),
        ] {
            if n > 0 {
                write!(f, ", {n} {what}")?;
            }
        }
        Ok(())
    }
}

/// What every connection of one reactor shares: the options and the
/// counters. One `Rc` per connection instead of a copy of each, because
/// whatever a connection's task holds, 19,000 idle connections hold 19,000
/// times.
struct Shared {
    options: EchoOptions,
    bytes: Cell<u64>,
    failed: Cell<u64>,
    idle_closed: Cell<u64>,
    stalled_closed: Cell<u64>,
    open: Cell<u64>,
    peak_open: Cell<u64>,
}

fn add(cell: &Cell<u64>, n: u64) {
    cell.set(cell.get() + n);
}

/// Echo every connection on `listener` until `stop` completes (or, with
/// `max_conns`, until that many connections have come and gone).
pub async fn serve(
    listener: TcpListener,
    options: EchoOptions,
    stop: impl Future<Output = ()>,
) -> io::Result<EchoReport> {
    let shared = Rc::new(Shared {
        options,
        bytes: Cell::new(0),
        failed: Cell::new(0),
        idle_closed: Cell::new(0),
        stalled_closed: Cell::new(0),
        open: Cell::new(0),
        peak_open: Cell::new(0),
    });
    let mut stop = pin!(stop);
    let mut report = EchoReport::default();
    // Kept only in bounded mode, to wait for the last connections.
    let mut handles: Vec<JoinHandle<()>> = Vec::new();
    let mut waiting = false;
    while options.max_conns.map_or(true, |max| report.accepted < max) {
        let next = poll_fn(|cx| {
            if stop.as_mut().poll(cx).is_ready() {
                return Poll::Ready(None);
            }
            // Woken after waiting: by the listener (or, rarely, by the I/O
            // budget after a long drain). Futile if nothing is there.
            let woken = std::mem::take(&mut waiting);
            report.wakeups += u64::from(woken);
            let accepted = listener.poll_accept(cx);
            if accepted.is_pending() {
                report.futile_wakeups += u64::from(woken);
                waiting = true;
            }
            accepted.map(Some)
        })
        .await;
        let Some(result) = next else {
            break;
        };
        let (stream, peer) = result?;
        report.accepted += 1;
        if options.max_open.is_some_and(|max| shared.open.get() >= max as u64) {
            // Closing now answers the client with a FIN at once; leaving it
            // in the accept queue would let it wait for a slot that only an
            // idle timeout (if any) would free.
            report.refused += 1;
            crate::narrate!("echo: {} open, at the cap: closing {peer}", shared.open.get());
            continue;
        }
        let connection = echo_connection(stream, shared.clone());
        report.task_bytes = std::mem::size_of_val(&connection);
        let task = reactor::spawn(connection);
        if options.max_conns.is_some() {
            handles.push(task);
        }
    }
    for handle in handles {
        handle.await;
    }
    report.bytes_echoed = shared.bytes.get();
    report.failed = shared.failed.get();
    report.idle_closed = shared.idle_closed.get();
    report.stalled_closed = shared.stalled_closed.get();
    report.peak_open = shared.peak_open.get();
    report.shed = listener.shed_count();
    Ok(report)
}

/// Counts a connection open while it lives (a task dropped at shutdown is
/// uncounted too).
struct Open<'a>(&'a Shared);

impl Open<'_> {
    fn new(shared: &Shared) -> Open<'_> {
        add(&shared.open, 1);
        shared.peak_open.set(shared.peak_open.get().max(shared.open.get()));
        Open(shared)
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.0.open.set(self.0.open.get() - 1);
    }
}

/// Why a connection ended early.
enum Ending {
    Idle,
    Stalled,
    Failed(io::Error),
}

impl From<io::Error> for Ending {
    fn from(e: io::Error) -> Ending {
        Ending::Failed(e)
    }
}

/// One connection's task. Everything it holds across an `.await` is paid
/// once per connection, so it holds little: the stream, one `Rc`, an empty
/// `Vec`, and the state of the one wait it is in.
async fn echo_connection(stream: TcpStream, shared: Rc<Shared>) {
    let _open = Open::new(&shared);
    if shared.options.nodelay {
        // Only latency is at stake if this fails, so the echo goes on.
        let _ = stream.set_nodelay(true);
    }
    let fd = stream.as_raw_fd();
    match echo_until_eof(&stream, &shared).await {
        Ok(()) => {}
        Err(Ending::Idle) => {
            add(&shared.idle_closed, 1);
            crate::narrate!("echo: fd {fd} idle for {:?}: closing", shared.options.idle_timeout);
        }
        Err(Ending::Stalled) => {
            add(&shared.stalled_closed, 1);
            crate::narrate!(
                "echo: fd {fd} read nothing for {:?}: closing",
                shared.options.write_stall_timeout
            );
        }
        Err(Ending::Failed(e)) => {
            add(&shared.failed, 1);
            crate::narrate!("echo: fd {fd} ended with {e}");
        }
    }
}

// ANCHOR: echo_loop
async fn echo_until_eof(stream: &TcpStream, shared: &Shared) -> Result<(), Ending> {
    let read_size = shared.options.buffer_size.clamp(1, reactor::SCRATCH_SIZE);
    // Empty, and so unallocated, except while a write is stuck.
    let mut unsent: Vec<u8> = Vec::new();
    loop {
        let echoed = read_and_echo(stream, read_size, &mut unsent, shared);
        let n = match shared.options.idle_timeout {
            None => echoed.await?,
            // `timeout` boxes the read for as long as it waits: one small
            // allocation per wait, paid only when an idle timeout is set.
            Some(limit) => reactor::timeout(limit, echoed).await.map_err(|_| Ending::Idle)??,
        };
        if n == 0 {
            return Ok(());
        }
        if !unsent.is_empty() {
            // Backpressure: no more reads until the client has taken these.
            // Boxed, so the rare stalled write's state is allocated while
            // it lasts instead of reserved in every connection's task.
            Box::pin(flush(stream, &mut unsent, shared)).await?;
        }
    }
}

/// Wait for bytes, read them into the scratch buffer and write them back
/// at once; keep in `unsent` whatever the kernel would not take. Returns
/// the bytes read (0: EOF).
fn read_and_echo<'a>(
    stream: &'a TcpStream,
    read_size: usize,
    unsent: &'a mut Vec<u8>,
    shared: &'a Shared,
) -> impl Future<Output = io::Result<usize>> + 'a {
    poll_fn(move |cx| {
        reactor::with_scratch(|scratch| {
            let buf = &mut scratch[..read_size];
            let n = ready!(stream.poll_read(cx, buf))?;
            let mut sent = 0;
            while sent < n {
                match stream.poll_write(cx, &buf[sent..n]) {
                    Poll::Ready(Ok(0)) | Poll::Pending => break,
                    Poll::Ready(Ok(k)) => sent += k,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                }
            }
            add(&shared.bytes, sent as u64);
            // The only copy, and only of what could not be sent.
            unsent.extend_from_slice(&buf[sent..n]);
            Poll::Ready(Ok(n))
        })
    })
}

/// Send `unsent`, each write bounded by the write-stall timeout; then
/// free its memory.
async fn flush(stream: &TcpStream, unsent: &mut Vec<u8>, shared: &Shared) -> Result<(), Ending> {
    let mut done = 0;
    while done < unsent.len() {
        let write = stream.write(&unsent[done..]);
        let n = match shared.options.write_stall_timeout {
            None => write.await?,
            Some(limit) => reactor::timeout(limit, write).await.map_err(|_| Ending::Stalled)??,
        };
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "send accepted 0 bytes").into());
        }
        done += n;
        add(&shared.bytes, n as u64);
    }
    // Freed, not kept: a connection that needed 64 KiB once should not hold
    // it through hours of idleness (nginx frees its buffers on keep-alive
    // the same way). The cost is an allocation per stalled burst.
    *unsent = Vec::new();
    Ok(())
}
// ANCHOR_END: echo_loop

/// The echo server on `threads` threads, each running its own reactor
/// (its own poller, its own scratch buffer, its own connections; nothing
/// shared but the listening socket, if [`ListenerKind`] shares it): a
/// [`ReactorThreads`] whose every thread runs [`serve`].
pub struct EchoThreads {
    threads: ReactorThreads<EchoReport>,
}

impl EchoThreads {
    /// Bind `addr` (port 0 picks one for all threads) and start serving.
    ///
    /// Errors at once if the kind needs what the configuration lacks
    /// ([`ListenerKind::Exclusive`] needs epoll in edge mode) or if a
    /// socket cannot be bound; a thread that fails later stops the others.
    pub fn start(
        config: Config,
        addr: SocketAddr,
        backlog: i32,
        threads: usize,
        kind: ListenerKind,
        options: EchoOptions,
    ) -> io::Result<EchoThreads> {
        let threads = ReactorThreads::start(config, addr, backlog, threads, kind, "echo", move |listener, stop| {
            serve(listener, options, stop.wait())
        })?;
        Ok(EchoThreads { threads })
    }

    /// The address every thread serves.
    pub fn local_addr(&self) -> SocketAddr {
        self.threads.local_addr()
    }

    /// The signal that stops every thread; [`Stop::trigger`] it from anywhere.
    pub fn stopper(&self) -> Stop {
        self.threads.stopper()
    }

    /// Wait for every thread to finish (after [`Stop::trigger`], or once
    /// each has served `max_conns`), and return their reports in thread
    /// order; the first error if any thread failed.
    pub fn join(self) -> io::Result<Vec<EchoReport>> {
        self.threads.join()
    }
}

impl fmt::Debug for EchoThreads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoThreads").field("threads", &self.threads).finish()
    }
}
