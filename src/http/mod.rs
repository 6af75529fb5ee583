//! `http`: an HTTP/1.1 server on the reactor: the backend of the story's
//! click (Q6, Q8, Q22, Q29).
//!
//! ```text
//! browser ── TCP ──▶ accept4 ─▶ read ─▶ frame (httparse + the rules below)
//!                                        │
//!                                        ▼
//!                            handler(Request) -> Response   (the click example
//!                                        │                   joins the pool here)
//!                                        ▼
//!          ◀── TCP ── write ◀─ Content-Length, Date, Server-Timing, Connection
//! ```
//!
//! What is whose: `httparse` tokenises a request head (the parser hyper
//! uses). Everything a *connection* needs is written here by hand, because
//! it is the lesson: where a request ends (`Content-Length`), whether the
//! connection lives after it (keep-alive by default on HTTP/1.1, close on
//! HTTP/1.0, `Connection: close` both ways), pipelined requests answered in
//! order, what is refused and with which status, and the [`Limits`] that
//! stop one client from holding the server: head size, header count, body
//! size, a request deadline, a keep-alive idle timeout, a write timeout, a
//! cap on unsent bytes and on open connections.
//!
//! This layer knows nothing of PostgreSQL or the pool; the `click` example
//! joins them in its handler.
//!
//! Files:
//! - `request.rs`: framing, sans-IO: bytes in, a [`Head`] or a [`Refusal`] out;
//! - `response.rs`: [`Response`], [`Status`], the framing headers, `Date`;
//! - `server.rs`: [`Server`]: the accept loop and each connection's states;
//! - `limits.rs`: [`Limits`], each default with the server it came from.
//!
//! Simplifications, labelled: no chunked request bodies (411, see
//! `request.rs`); no `Expect: 100-continue` (curl waits a second and sends
//! the body anyway); no HTTP/2 or TLS (the story's browser speaks them to a
//! load balancer; `docs/click.md` says what that changes); responses are
//! built whole, never streamed.

mod limits;
mod request;
mod response;
mod server;

pub use limits::{Limits, HEADER_SLOTS};
pub use request::{parse_head, Head, Header, Refusal, Version};
pub use response::{http_date, Response, Status, Timing};
pub use server::{Arrival, ConnInfo, Exchange, Request, Server, ServerStats, StatsHandle};
