//! # connlab: what is a connection?
//!
//! Between `pool.acquire()` and the wire there is an integer, a kernel file,
//! a socket, a TCP state machine, a 4-tuple, readiness events, the
//! PostgreSQL wire protocol and a pool slot. connlab builds each of them by
//! hand on Linux, runs them for real on loopback, and lets you watch
//! (`CONNLAB_TRACE=1` narrates every syscall and protocol message).
//!
//! # Layout
//!
//! The stack, from the bottom up. Each layer imports only the layers in the
//! rows above its own (arrows point down the stack), and each is usable on
//! its own. `trace` sits at the very bottom because it is a leaf: it imports
//! nothing from the crate, so every layer may narrate. `tests/layers.rs`
//! reads this table and fails on any import that runs up it.
//!
//! | module | what it shows | kernel calls / messages it owns |
//! |---|---|---|
//! | [`trace`] | the narrator switch (a leaf every layer may use) | (it watches the others) |
//! | [`sys`] | the visible kernel boundary; errors that name the call and errno | `socket`, `connect`, `accept4`, `fcntl`, `eventfd`, `getsockopt`, `setrlimit` |
//! | [`poller`] | one readiness contract, three backends side by side | `select`, `poll`, `epoll_create1`/`epoll_ctl`/`epoll_wait` |
//! | [`reactor`] | the event loop: tokens, timers, a waker, a tiny executor | the wait timeout, `eventfd` |
//! | [`net`] | non-blocking TCP and Unix sockets on the reactor | `EINPROGRESS`, `SO_ERROR`, accept draining, `EAGAIN` |
//! | [`inspect`] | from fd 7 to `/proc`, the inode, the 4-tuple, TCP state, `TCP_INFO` | `/proc/self/fd`, `/proc/net/tcp` |
//! | [`pg`] | the PostgreSQL wire protocol (sans-IO), SCRAM, a client | StartupMessage ... ReadyForQuery |
//! | [`pool`] | idle deque, active count, waiters; the slot lifecycle | (none: it is all policy) |
//! | [`http`] | HTTP/1.1 on the reactor: framing, keep-alive, limits, `Server-Timing` | request line ... `Content-Length` body |
//! | [`lab`] | kernel experiments in a private network namespace (SYN timeouts, SYN cookies, port exhaustion, FIN_WAIT_2, slow start); a LAN on loopback | `unshare(CLONE_NEWNET)`, `/proc/sys/net` |
//! | [`testbed`] | the real engines examples and tests start and throw away: PostgreSQL, PgBouncer, HAProxy, connlab's own servers as backends | `initdb`, `postgres`, `pg_ctl`, `pgbouncer`, `haproxy`; a watchdog |
//!
//! Within `pg`, `pg::protocol` is sans-IO: it imports nothing from
//! `reactor` or `net` (the same test checks it).
//!
//! # Reading order
//!
//! From the click down to the kernel and back: [`http`] → [`pool`] → [`pg`] → [`net`]
//! → [`reactor`] → [`poller`] → [`sys`], with [`inspect`] as the microscope
//! at every step. [`guide`] walks the same path in doc-tests that run;
//! `docs/README.md` walks it with measurements.

#![deny(missing_docs)]

pub mod guide;
pub mod http;
pub mod inspect;
pub mod lab;
pub mod net;
pub mod pg;
pub mod poller;
pub mod pool;
pub mod reactor;
pub mod sys;
pub mod testbed;
pub mod trace;
