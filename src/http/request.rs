//! Request framing, without I/O: bytes in; "need more bytes", a request
//! head, or the status to refuse it with, out (RFC 9112 §2–§9).
//!
//! The tokenising (request line, header names, values) is `httparse`'s:
//! it is the parser hyper uses, it is fuzzed, and a hand-rolled tokenizer
//! is where request-smuggling bugs are born. What this file owns is what
//! a *connection* needs to know about each request, and every rule for it
//! is written here by hand:
//!
//! - where the request ends: `Content-Length` (RFC 9112 §6.2), or no body;
//! - whether the connection stays open after it: HTTP/1.1 keeps alive
//!   unless `Connection: close`; HTTP/1.0 closes unless
//!   `Connection: keep-alive` (RFC 9112 §9.3);
//! - what is refused, and with which status:
//!
//! | request | answer | why |
//! |---|---|---|
//! | both `Content-Length` and `Transfer-Encoding` | 400, close | two framings for one body is how requests are smuggled past a proxy (RFC 9112 §6.1, §11.2) |
//! | `Content-Length` not a plain decimal, or two that differ | 400, close | the body's end is unknown, so nothing after it can be trusted |
//! | `Transfer-Encoding: chunked` | 411, close | this server needs the length up front (see below) |
//! | any other `Transfer-Encoding` | 501, close | RFC 9112 §6.1: an unknown coding is "not implemented" |
//! | head over [`Limits::max_head_bytes`] or more than [`Limits::max_headers`] fields | 431, close | RFC 6585 §5 |
//! | body over [`Limits::max_body_bytes`] | 413, close | refused before the body is read |
//! | HTTP/1.1 without exactly one `Host` | 400, close | RFC 9112 §3.2 says must |
//! | anything `httparse` cannot read | 400, close | |
//!
//! Chunked request bodies are refused (411 Length Required) rather than
//! decoded: the click's requests are bodiless `GET`s, browsers send
//! `Content-Length` for every body they build from a string or a form, and
//! a chunk decoder is a second framing state machine to get right. hyper
//! decodes them (`proto/h1/decode.rs`); that is the alternative not taken.
//! A client told 411 can retry with a length.
//!
//! Every refusal closes the connection: after a framing error the server
//! cannot know where the next request starts.

use std::fmt;

use super::limits::{Limits, HEADER_SLOTS};
use super::response::Status;

/// The protocol version on the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    /// `HTTP/1.0`: closes after each response unless asked to keep alive.
    Http10,
    /// `HTTP/1.1`: keeps alive unless asked to close.
    Http11,
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Version::Http10 => "HTTP/1.0",
            Version::Http11 => "HTTP/1.1",
        })
    }
}

/// One header field. Names are ASCII tokens (httparse checks); values are
/// bytes, since HTTP allows obsolete non-ASCII octets in them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name as sent (compare with `eq_ignore_ascii_case`).
    pub name: String,
    /// The field value, without surrounding whitespace.
    pub value: Vec<u8>,
}

/// A parsed request head and what it means for the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: `/api/users/42`.
    pub target: String,
    /// HTTP/1.0 or HTTP/1.1.
    pub version: Version,
    /// Every header field, in order.
    pub headers: Vec<Header>,
    /// Bytes of body that follow the head (0 when there is none).
    pub content_length: usize,
    /// Does the client allow the connection to stay open after the answer?
    pub keep_alive: bool,
}

impl Head {
    /// The first value of header `name` (case-insensitive), if present.
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_slice())
    }
}

/// Why a request was refused: the status to answer with and a reason
/// (sent as the response body, and narrated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// 400, 408, 411, 413, 431, 501 or 505.
    pub status: Status,
    /// What was wrong, in words.
    pub reason: String,
}

impl Refusal {
    fn new(status: Status, reason: impl Into<String>) -> Refusal {
        Refusal {
            status,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.status, self.reason)
    }
}

impl std::error::Error for Refusal {}

/// Parse the head at the start of `buf`.
///
/// - `Ok(None)`: the head is not complete yet; read more (unless `buf`
///   has already passed `max_head_bytes`, which is a 431 instead);
/// - `Ok(Some((head, n)))`: the head is the first `n` bytes; its body is
///   the next `head.content_length` bytes;
/// - `Err(refusal)`: answer `refusal.status` and close.
pub fn parse_head(buf: &[u8], limits: &Limits) -> Result<Option<(Head, usize)>, Refusal> {
    // ANCHOR: parse_head
    let mut slots = [httparse::EMPTY_HEADER; HEADER_SLOTS];
    let slots = &mut slots[..limits.max_headers.clamp(1, HEADER_SLOTS)];
    let mut req = httparse::Request::new(slots);
    let head_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() > limits.max_head_bytes => {
            return Err(too_large_head(limits));
        }
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => {
            return Err(Refusal::new(
                Status::HEADERS_TOO_LARGE,
                format!("more than {} header fields", limits.max_headers),
            ))
        }
        Err(httparse::Error::Version) => {
            return Err(Refusal::new(
                Status::VERSION_NOT_SUPPORTED,
                "only HTTP/1.0 and HTTP/1.1",
            ))
        }
        Err(e) => {
            return Err(Refusal::new(
                Status::BAD_REQUEST,
                format!("malformed request head: {e}"),
            ))
        }
    };
    if head_len > limits.max_head_bytes {
        return Err(too_large_head(limits));
    }
    // httparse fills all three on Complete; a None would be its bug, and
    // is still answered as a bad request rather than a panic.
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(Refusal::new(Status::BAD_REQUEST, "incomplete request line"));
    };
    let version = if minor == 0 { Version::Http10 } else { Version::Http11 };
    let headers: Vec<Header> = req
        .headers
        .iter()
        .map(|h| Header {
            name: h.name.to_string(),
            value: h.value.to_vec(),
        })
        .collect();
    let framing = body_framing(&headers, version, limits)?;
    Ok(Some((
        Head {
            method: method.to_string(),
            target: target.to_string(),
            version,
            keep_alive: keep_alive(&headers, version),
            headers,
            content_length: framing,
        },
        head_len,
    )))
    // ANCHOR_END: parse_head
}

fn too_large_head(limits: &Limits) -> Refusal {
    Refusal::new(
        Status::HEADERS_TOO_LARGE,
        format!("request head over {} bytes", limits.max_head_bytes),
    )
}

/// How long is the body? The rules of RFC 9112 §6, minus chunked.
fn body_framing(headers: &[Header], version: Version, limits: &Limits) -> Result<usize, Refusal> {
    // ANCHOR: body_framing
    let mut length: Option<usize> = None;
    let mut transfer_encoding: Option<&[u8]> = None;
    let mut hosts = 0;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            let n = parse_content_length(&h.value)?;
            if length.is_some_and(|seen| seen != n) {
                return Err(Refusal::new(Status::BAD_REQUEST, "two different Content-Length values"));
            }
            length = Some(n);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            transfer_encoding = Some(&h.value);
        } else if h.name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }
    if version == Version::Http11 && hosts != 1 {
        return Err(Refusal::new(
            Status::BAD_REQUEST,
            format!("an HTTP/1.1 request needs exactly one Host header, this one has {hosts}"),
        ));
    }
    match (transfer_encoding, length) {
        (Some(_), Some(_)) => Err(Refusal::new(
            Status::BAD_REQUEST,
            "both Content-Length and Transfer-Encoding: the body's end is ambiguous",
        )),
        (Some(te), None) if has_token(te, "chunked") => Err(Refusal::new(
            Status::LENGTH_REQUIRED,
            "chunked request bodies are not accepted here; send Content-Length",
        )),
        (Some(_), None) => Err(Refusal::new(Status::NOT_IMPLEMENTED, "unknown Transfer-Encoding")),
        (None, Some(n)) if n > limits.max_body_bytes => Err(Refusal::new(
            Status::CONTENT_TOO_LARGE,
            format!("body of {n} bytes, the limit is {}", limits.max_body_bytes),
        )),
        (None, length) => Ok(length.unwrap_or(0)),
    }
    // ANCHOR_END: body_framing
}

/// `Content-Length = 1*DIGIT` (RFC 9110 §8.6): no sign, no spaces inside,
/// no hex, and not so long that it overflows.
fn parse_content_length(value: &[u8]) -> Result<usize, Refusal> {
    let bad = || Refusal::new(Status::BAD_REQUEST, "Content-Length is not a decimal number");
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    value.iter().try_fold(0usize, |n, &d| {
        n.checked_mul(10)
            .and_then(|n| n.checked_add(usize::from(d - b'0')))
            .ok_or_else(bad)
    })
}

/// The version's default, overridden by a `Connection` token.
fn keep_alive(headers: &[Header], version: Version) -> bool {
    let mut keep = version == Version::Http11;
    for h in headers.iter().filter(|h| h.name.eq_ignore_ascii_case("connection")) {
        if has_token(&h.value, "close") {
            return false;
        }
        if has_token(&h.value, "keep-alive") {
            keep = true;
        }
    }
    keep
}

/// Is `token` one of the comma-separated, case-insensitive items of `value`?
fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| item.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(bytes: &str) -> Result<Option<(Head, usize)>, Refusal> {
        parse_head(bytes.as_bytes(), &Limits::default())
    }

    fn refused(bytes: &str) -> u16 {
        parse(bytes).expect_err("should be refused").status.0
    }

    #[test]
    fn a_get_keeps_alive_on_http11_and_closes_on_http10() {
        let (head, n) = parse("GET /api/users/42 HTTP/1.1\r\nHost: x\r\n\r\n").unwrap().unwrap();
        assert_eq!(
            (head.method.as_str(), head.target.as_str(), n),
            ("GET", "/api/users/42", 39)
        );
        assert!(head.keep_alive);
        let (head, _) = parse("GET / HTTP/1.0\r\n\r\n").unwrap().unwrap();
        assert!(!head.keep_alive);
        let (head, _) = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(head.keep_alive);
        let (head, _) = parse("GET / HTTP/1.1\r\nHost: x\r\nConnection: foo, close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
    }

    #[test]
    fn an_unfinished_head_needs_more_bytes() {
        assert_eq!(parse("GET / HTTP/1.1\r\nHost: x\r\n").unwrap(), None);
    }

    #[test]
    fn each_framing_violation_gets_its_status() {
        assert_eq!(
            refused("GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            400
        );
        assert_eq!(refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n"), 400);
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0x10\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"),
            400
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"),
            411
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n"),
            501
        );
        assert_eq!(
            refused("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n"),
            413
        );
        assert_eq!(refused("GET / HTTP/1.1\r\n\r\n"), 400);
        assert_eq!(refused("GET / HTTP/2.0\r\nHost: x\r\n\r\n"), 505);
        assert_eq!(refused("GET\0/ HTTP/1.1\r\n\r\n"), 400);
    }

    #[test]
    fn identical_repeated_content_lengths_are_one_length() {
        let (head, _) = parse("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!(head.content_length, 2);
    }

    #[test]
    fn a_head_over_the_limit_is_431_even_before_it_ends() {
        let limits = Limits {
            max_head_bytes: 64,
            ..Limits::default()
        };
        let long = format!("GET /{} HTTP/1.1\r\n", "a".repeat(100));
        assert_eq!(parse_head(long.as_bytes(), &limits).unwrap_err().status.0, 431);
        let many: String = (0..101).map(|i| format!("X-{i}: y\r\n")).collect();
        assert_eq!(refused(&format!("GET / HTTP/1.1\r\nHost: x\r\n{many}\r\n")), 431);
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all: a head, "more", or a refusal; never a panic,
        /// and a head never claims more bytes than it was given.
        #[test]
        fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(Some((_, n))) = parse_head(&bytes, &Limits::default()) {
                prop_assert!(n <= bytes.len());
            }
        }

        /// A valid head cut short is "more bytes", never a refusal: a slow
        /// client is waited for, not punished.
        #[test]
        fn every_prefix_of_a_valid_head_asks_for_more(path in "/[a-z0-9/]{0,40}", cut in any::<prop::sample::Index>()) {
            let head = format!("GET {path} HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n");
            let cut = cut.index(head.len());
            prop_assert_eq!(parse_head(&head.as_bytes()[..cut], &Limits::default()), Ok(None));
            let parsed = parse_head(head.as_bytes(), &Limits::default()).unwrap().unwrap();
            prop_assert_eq!(parsed.1, head.len());
        }
    }
}
