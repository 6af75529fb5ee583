//! Responses: [`Status`], [`Response`], and how one becomes bytes
//! (RFC 9112 §4 status line, §6.3 message length; RFC 9110 §6.6.1 `Date`;
//! W3C Server Timing for `Server-Timing`).
//!
//! Every response this server sends carries:
//!
//! - `Content-Length` (Q22): the browser knows where the body ends without
//!   waiting for the connection to close, which is what lets it keep the
//!   connection for the next request. Bodies are built whole before the
//!   head is written, so the length is always known; chunked responses
//!   (for bodies produced as they go) are the alternative not taken.
//! - `Date`, which RFC 9110 says an origin server with a clock must send.
//!   Formatting it costs a few hundred nanoseconds, so it is cached per
//!   second per thread, as hyper and nginx do.
//! - `Server-Timing`, the server's own durations (`read`, `parse`,
//!   `app`, plus whatever the handler adds: `acquire`, `db`, `json`).
//!   Browsers expose it to the page (`PerformanceResourceTiming.serverTiming`)
//!   and DevTools draws it in the request's Timing tab.
//! - `Connection: close` when this is the connection's last response, so
//!   the client knows not to reuse it (RFC 9112 §9.6).

use std::cell::RefCell;
use std::fmt;
use std::io::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::request::Version;

/// An HTTP status code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Status(pub u16);

impl Status {
    /// 200
    pub const OK: Status = Status(200);
    /// 400: the request could not be framed or read.
    pub const BAD_REQUEST: Status = Status(400);
    /// 404
    pub const NOT_FOUND: Status = Status(404);
    /// 405
    pub const METHOD_NOT_ALLOWED: Status = Status(405);
    /// 408: the request did not arrive within the request timeout.
    pub const REQUEST_TIMEOUT: Status = Status(408);
    /// 411: a body without `Content-Length` (here: chunked).
    pub const LENGTH_REQUIRED: Status = Status(411);
    /// 413: the body is over the limit.
    pub const CONTENT_TOO_LARGE: Status = Status(413);
    /// 431: the head is over the limit.
    pub const HEADERS_TOO_LARGE: Status = Status(431);
    /// 500
    pub const INTERNAL_ERROR: Status = Status(500);
    /// 501: a `Transfer-Encoding` this server does not implement.
    pub const NOT_IMPLEMENTED: Status = Status(501);
    /// 503: over the connection cap, or a dependency (the database) is down.
    pub const SERVICE_UNAVAILABLE: Status = Status(503);
    /// 505: not HTTP/1.x.
    pub const VERSION_NOT_SUPPORTED: Status = Status(505);

    /// The reason phrase (RFC 9110 §15); informative only, clients ignore it.
    pub fn reason(self) -> &'static str {
        match self.0 {
            200 => "OK",
            204 => "No Content",
            400 => "Bad Request",
            404 => "Not Found",
            405 => "Method Not Allowed",
            408 => "Request Timeout",
            411 => "Length Required",
            413 => "Content Too Large",
            431 => "Request Header Fields Too Large",
            500 => "Internal Server Error",
            501 => "Not Implemented",
            503 => "Service Unavailable",
            505 => "HTTP Version Not Supported",
            _ => "",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.0, self.reason())
    }
}

/// One `Server-Timing` metric: a name, a duration and an optional note.
#[derive(Debug, Clone, PartialEq)]
pub struct Timing {
    /// A token: `db`, `acquire`.
    pub name: &'static str,
    /// How long it took.
    pub duration: Duration,
    /// Shown by DevTools beside the bar (`idle pop`, `new connection`).
    pub description: Option<String>,
}

/// A response, built whole by the handler; the server adds the framing
/// headers when it writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The status code.
    pub status: Status,
    /// Headers besides the ones the server writes itself.
    pub headers: Vec<(String, String)>,
    /// The body. `Content-Length` is its length.
    pub body: Vec<u8>,
    /// `Server-Timing` metrics from the handler.
    pub timings: Vec<Timing>,
    /// Close the connection after this response even if the client would
    /// keep it (the click page's "Connection: close" toggle uses this).
    pub close: bool,
}

impl Response {
    /// A response with `status` and an empty body.
    pub fn new(status: Status) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            timings: Vec::new(),
            close: false,
        }
    }

    /// A body with its `Content-Type`.
    pub fn with_body(status: Status, content_type: &str, body: impl Into<Vec<u8>>) -> Response {
        Response::new(status).header("Content-Type", content_type).body(body)
    }

    /// `application/json`.
    pub fn json(status: Status, body: impl Into<Vec<u8>>) -> Response {
        Response::with_body(status, "application/json", body)
    }

    /// `text/plain; charset=utf-8`.
    pub fn text(status: Status, body: impl Into<Vec<u8>>) -> Response {
        Response::with_body(status, "text/plain; charset=utf-8", body)
    }

    /// Add a header. CR, LF and other control characters in the name or
    /// value are replaced by spaces: a header value must never be able to
    /// start a new header line (response splitting).
    pub fn header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((scrub(name), scrub(value)));
        self
    }

    /// Set the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Add a `Server-Timing` metric.
    pub fn timing(mut self, name: &'static str, duration: Duration, description: Option<String>) -> Response {
        self.timings.push(Timing {
            name,
            duration,
            description,
        });
        self
    }

    /// Ask the server to close the connection after this response.
    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }
}

fn scrub(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// How the server frames a response it writes.
pub(crate) struct Framing<'a> {
    pub(crate) version: Version,
    /// Is this the last response on the connection?
    pub(crate) closing: bool,
    /// `HEAD`: send the head, with the body's length, but not the body.
    pub(crate) head_only: bool,
    /// The server's own metrics, written before the handler's.
    pub(crate) server_timings: &'a [Timing],
}

/// Append `response`, framed, to `out`.
///
/// Written straight into `out` (no intermediate `String`), so a response
/// costs no allocation of its own once `out` has grown to its size.
pub(crate) fn encode(response: &Response, framing: &Framing<'_>, out: &mut Vec<u8>) {
    // ANCHOR: encode
    // A 1.0 client gets a 1.0 status line: it may not understand 1.1.
    let _ = write!(out, "{} {}\r\n", framing.version, response.status);
    with_date(|date| out.extend_from_slice(date.as_bytes()));
    let _ = write!(out, "Content-Length: {}\r\n", response.body.len());
    match (framing.closing, framing.version) {
        (true, _) => out.extend_from_slice(b"Connection: close\r\n"),
        (false, Version::Http10) => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        (false, Version::Http11) => {}
    }
    write_server_timing(out, framing.server_timings.iter().chain(&response.timings));
    for (name, value) in &response.headers {
        let _ = write!(out, "{name}: {value}\r\n");
    }
    out.extend_from_slice(b"\r\n");
    if !framing.head_only {
        out.extend_from_slice(&response.body);
    }
    // ANCHOR_END: encode
}

/// `Server-Timing: read;dur=0.012, db;dur=0.310;desc="1 round trip"`:
/// durations in milliseconds, as the spec asks, to the microsecond
/// (printed from integers: a float's `{:.3}` costs several times more,
/// on every response).
fn write_server_timing<'t>(out: &mut Vec<u8>, timings: impl Iterator<Item = &'t Timing>) {
    let mut first = true;
    for t in timings {
        out.extend_from_slice(if first { b"Server-Timing: " } else { b", " });
        first = false;
        let micros = (t.duration.as_nanos() + 500) / 1000;
        let _ = write!(out, "{};dur={}.{:03}", t.name, micros / 1000, micros % 1000);
        if let Some(desc) = &t.description {
            let desc: String = desc
                .chars()
                .filter(|c| *c != '"' && *c != '\\' && !c.is_control())
                .collect();
            let _ = write!(out, ";desc=\"{desc}\"");
        }
    }
    if !first {
        out.extend_from_slice(b"\r\n");
    }
}

thread_local! {
    /// (second since the epoch, `"Date: ...\r\n"`) of the last format.
    static DATE: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
}

/// Run `f` with this second's `Date:` header line.
fn with_date(f: impl FnOnce(&str)) {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with(|cell| {
        let mut cached = cell.borrow_mut();
        if cached.0 != now {
            *cached = (now, format!("Date: {}\r\n", http_date(now)));
        }
        f(&cached.1);
    });
}

/// IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`.
/// The calendar arithmetic is Howard Hinnant's `civil_from_days`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let days = unix_secs / 86_400;
    let secs = unix_secs % 86_400;
    // civil_from_days, for days since 1970-01-01 (non-negative here).
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        DAYS[(days % 7) as usize],
        day,
        MONTHS[(month - 1) as usize],
        year,
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_date_matches_rfc_examples() {
        assert_eq!(http_date(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    }

    #[test]
    fn a_response_carries_length_date_timing_and_close() {
        let response = Response::json(Status::OK, "{}").timing("db", Duration::from_micros(1500), Some("q\"x".into()));
        let mut out = Vec::new();
        let server = [Timing {
            name: "read",
            duration: Duration::from_micros(10),
            description: None,
        }];
        encode(
            &response,
            &Framing {
                version: Version::Http11,
                closing: true,
                head_only: false,
                server_timings: &server,
            },
            &mut out,
        );
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\nDate: "), "{text}");
        assert!(text.contains("\r\nContent-Length: 2\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.contains("\r\nServer-Timing: read;dur=0.010, db;dur=1.500;desc=\"qx\"\r\n"));
        assert!(text.ends_with("\r\n\r\n{}"));
    }

    #[test]
    fn header_values_cannot_split_the_response() {
        let r = Response::new(Status::OK).header("X-A", "1\r\nSet-Cookie: evil");
        assert_eq!(r.headers[0].1, "1  Set-Cookie: evil");
    }
}
