//! [`Limits`]: every bound the HTTP server puts on a client, named, with
//! the default it ships and the server that default was taken from.
//!
//! A server without limits is a server any one client can stop: one that
//! never finishes its head holds a slot forever, one that announces a
//! gigabyte body gets a gigabyte buffer, one that never reads its answers
//! fills memory with them. Each limit below closes one of those doors, and
//! each has a test in `tests/http_failures.rs` that walks into it.

use std::time::Duration;

/// The bounds the server enforces on every connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Largest request head (request line + headers + the blank line).
    /// Past it: `431 Request Header Fields Too Large` and close.
    /// Default 16 KiB: Node.js's `--max-http-header-size`; nginx accepts up
    /// to 4 × 8 KiB (`large_client_header_buffers 4 8k`) but any single
    /// line over 8 KiB; browsers' real heads are 0.5 – 2 KiB.
    pub max_head_bytes: usize,
    /// Most header fields in one head; past it, 431. Default 100: hyper's
    /// default (`h1_max_headers`), also Go's `net/http` order of magnitude.
    pub max_headers: usize,
    /// Largest request body (`Content-Length`); past it, `413 Content Too
    /// Large` before a byte of the body is read. Default 1 MiB: nginx's
    /// `client_max_body_size 1m`.
    pub max_body_bytes: usize,
    /// From the first byte of a request (or from accept, for the first one)
    /// until its head and body have all arrived. Past it: `408 Request
    /// Timeout` and close: the slow-client ("slowloris") defence.
    /// Default 30 s: hyper's `header_read_timeout`; nginx uses 60 s
    /// (`client_header_timeout`) and 60 s again for the body.
    pub request_timeout: Duration,
    /// How long a kept-alive connection may sit idle between requests
    /// before the *server* closes it (and so the server's end enters
    /// TIME_WAIT). Default 75 s: nginx's `keepalive_timeout`; browsers give
    /// up on their side first (Chromium after ~5 minutes unused, but it
    /// expects servers to close sooner).
    pub keep_alive_timeout: Duration,
    /// How long writing one batch of responses may wait on a client that
    /// does not read. Past it, the connection is closed. Default 60 s:
    /// nginx's `send_timeout`.
    pub write_timeout: Duration,
    /// Response bytes a connection may have encoded but not yet sent before
    /// the server stops answering further pipelined requests and flushes.
    /// The server never reads a new request while a flush is pending, so
    /// this (plus one response) bounds a non-reading client's memory.
    /// Default 64 KiB: hyper flushes its write buffer at a similar size.
    pub max_unsent_bytes: usize,
    /// Connections open at once. Past it, a new connection gets a short
    /// `503` and is closed at once (counted as shed), so the clients already
    /// connected keep their service. Default 512: nginx's
    /// `worker_connections` default.
    pub max_connections: usize,
    /// On shutdown, how long in-flight requests get to finish.
    /// Default 10 s.
    pub shutdown_grace: Duration,
}

/// Header slots the parser has on its stack; [`Limits::max_headers`] is
/// clamped to it. Big enough for any head within the default 16 KiB.
pub const HEADER_SLOTS: usize = 128;

// ANCHOR: defaults
impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_head_bytes: 16 * 1024,
            max_headers: 100,
            max_body_bytes: 1024 * 1024,
            request_timeout: Duration::from_secs(30),
            keep_alive_timeout: Duration::from_secs(75),
            write_timeout: Duration::from_secs(60),
            max_unsent_bytes: 64 * 1024,
            max_connections: 512,
            shutdown_grace: Duration::from_secs(10),
        }
    }
}
// ANCHOR_END: defaults
