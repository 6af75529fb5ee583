//! A wire tap: a record of every protocol message a connection sends and
//! receives, with its size and (optionally) its bytes.
//!
//! The narrator (`CONNLAB_TRACE=1`) tells messages as they pass, on stderr;
//! the tap keeps them, so a program can show the exchange afterwards: the
//! `journey` example prints the startup and one query message by message,
//! and as hex with `--bytes`. It is off unless asked for, and when off it
//! costs one branch per message.
//!
//! Frontend messages are split out of the write buffer by their framing
//! (`protocol-message-formats.html`): a tag byte and a big-endian length
//! that counts itself but not the tag, except for the untagged
//! StartupMessage, CancelRequest and SSLRequest, which begin with the length.

use std::fmt;

use crate::pg::protocol::backend::{message_name, Authentication, Message};
use crate::pg::protocol::frontend;

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server (`→`).
    Sent,
    /// Server to client (`←`).
    Received,
}

/// One message on the wire.
#[derive(Debug, Clone)]
pub struct WireRecord {
    /// Which way it went.
    pub direction: Direction,
    /// The message type, as the protocol docs name it (`Parse`, `DataRow`,
    /// `AuthenticationSASLContinue`).
    pub name: &'static str,
    /// Its size on the wire, tag and length field included.
    pub len: usize,
    /// For received messages, the decoded message as the narrator shows it.
    pub summary: Option<String>,
    /// The bytes themselves, when the tap was started with `keep_bytes`.
    pub bytes: Option<Vec<u8>>,
}

impl fmt::Display for WireRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let arrow = match self.direction {
            Direction::Sent => "→",
            Direction::Received => "←",
        };
        write!(f, "{arrow} {} ({} B)", self.name, self.len)?;
        if let Some(summary) = &self.summary {
            write!(f, "  {summary}")?;
        }
        Ok(())
    }
}

/// The records of a running tap.
#[derive(Debug, Default)]
pub(super) struct Tap {
    pub(super) records: Vec<WireRecord>,
    pub(super) keep_bytes: bool,
}

/// The byte an untagged message starts with. Every frontend tag is a
/// printable letter, and an untagged message starts with the high byte of
/// its length, which is 0 for any message under 16 MiB.
const UNTAGGED_FIRST_BYTE: u8 = 0;

impl Tap {
    /// Record the frontend messages in one outgoing buffer.
    pub(super) fn sent(&mut self, mut out: &[u8]) {
        while !out.is_empty() {
            let (name, len) = if out[0] == UNTAGGED_FIRST_BYTE {
                (untagged_name(out), frame_len(out, 0))
            } else {
                (self.frontend_name(out[0]), frame_len(out, 1))
            };
            let len = len.min(out.len()).max(1);
            let (frame, rest) = out.split_at(len);
            self.records.push(WireRecord {
                direction: Direction::Sent,
                name,
                len,
                summary: None,
                bytes: self.keep_bytes.then(|| frame.to_vec()),
            });
            out = rest;
        }
    }

    /// Record the SSLRequest and the server's one-byte answer (`S` or
    /// `N`), which cross the socket before the tap's connection exists and
    /// are no framed messages. After `S` the tap records the messages
    /// inside TLS, as plaintext; the TLS records themselves are narrated
    /// (`CONNLAB_TRACE=1`), not tapped.
    pub(super) fn ssl_negotiation(&mut self, answer: u8) {
        let mut request = Vec::new();
        frontend::ssl_request(&mut request);
        self.sent(&request);
        let summary = match answer {
            b'S' => "'S': a TLS handshake follows, then everything below is encrypted",
            _ => "'N': no TLS on this server; the conversation stays in clear",
        };
        self.records.push(WireRecord {
            direction: Direction::Received,
            name: "SSLResponse",
            len: 1,
            summary: Some(summary.to_string()),
            bytes: self.keep_bytes.then(|| vec![answer]),
        });
    }

    /// Record one decoded backend message.
    pub(super) fn received(&mut self, msg: &Message<'_>, frame: &[u8]) {
        let name = match msg {
            Message::Authentication(auth) => authentication_name(auth),
            _ => frame.first().map_or("unknown", |&tag| message_name(tag)),
        };
        self.records.push(WireRecord {
            direction: Direction::Received,
            name,
            len: frame.len(),
            summary: Some(msg.to_string()),
            bytes: self.keep_bytes.then(|| frame.to_vec()),
        });
    }

    /// `p` is one tag for four messages; which one depends on what the
    /// server asked for last.
    fn frontend_name(&self, tag: u8) -> &'static str {
        match tag {
            frontend::PASSWORD_MESSAGE => {
                let last_ask = self
                    .records
                    .iter()
                    .rev()
                    .find(|r| r.direction == Direction::Received)
                    .map(|r| r.name);
                match last_ask {
                    Some("AuthenticationSASL") => "SASLInitialResponse",
                    Some("AuthenticationSASLContinue") => "SASLResponse",
                    _ => "PasswordMessage",
                }
            }
            frontend::QUERY => "Query",
            frontend::PARSE => "Parse",
            frontend::BIND => "Bind",
            frontend::DESCRIBE => "Describe",
            frontend::EXECUTE => "Execute",
            frontend::CLOSE => "Close",
            frontend::SYNC => "Sync",
            frontend::FLUSH => "Flush",
            frontend::TERMINATE => "Terminate",
            _ => "unknown",
        }
    }
}

/// The whole frame length of the message at the start of `buf`, whose
/// length field starts at `at`. A short or negative length yields the rest
/// of the buffer: the tap must describe, never panic.
fn frame_len(buf: &[u8], at: usize) -> usize {
    let field = buf.get(at..at + 4).and_then(|b| <[u8; 4]>::try_from(b).ok());
    match field.map(i32::from_be_bytes).and_then(|n| usize::try_from(n).ok()) {
        Some(n) if n >= 4 => at + n,
        _ => buf.len(),
    }
}

fn untagged_name(buf: &[u8]) -> &'static str {
    let code = buf
        .get(4..8)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(i32::from_be_bytes);
    match code {
        Some(crate::pg::protocol::CANCEL_REQUEST_CODE) => "CancelRequest",
        Some(crate::pg::protocol::SSL_REQUEST_CODE) => "SSLRequest",
        _ => "StartupMessage",
    }
}

fn authentication_name(auth: &Authentication<'_>) -> &'static str {
    match auth {
        Authentication::Ok => "AuthenticationOk",
        Authentication::CleartextPassword => "AuthenticationCleartextPassword",
        Authentication::Md5Password { .. } => "AuthenticationMD5Password",
        Authentication::Sasl(_) => "AuthenticationSASL",
        Authentication::SaslContinue(_) => "AuthenticationSASLContinue",
        Authentication::SaslFinal(_) => "AuthenticationSASLFinal",
        _ => "Authentication",
    }
}

/// How many round trips a list of records took: each time the client
/// sends after having received, it starts a new trip.
pub fn round_trips(records: &[WireRecord]) -> usize {
    let mut trips = 0;
    let mut last = None;
    for r in records {
        if r.direction == Direction::Sent && last != Some(Direction::Sent) {
            trips += 1;
        }
        last = Some(r.direction);
    }
    trips
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sent_buffer_splits_into_named_frames() {
        let mut out = Vec::new();
        frontend::startup_message(&mut out, &[("user", "u")]).unwrap();
        frontend::parse(&mut out, "", "SELECT 1", &[]).unwrap();
        frontend::sync(&mut out);
        let mut tap = Tap::default();
        tap.sent(&out);
        let names: Vec<_> = tap.records.iter().map(|r| r.name).collect();
        assert_eq!(names, ["StartupMessage", "Parse", "Sync"]);
        assert_eq!(tap.records.iter().map(|r| r.len).sum::<usize>(), out.len());
    }

    #[test]
    fn a_truncated_buffer_is_described_not_panicked_on() {
        let mut tap = Tap::default();
        tap.sent(&[b'P', 0, 0]);
        tap.sent(&[b'S', 0xff, 0xff, 0xff, 0xff]);
        assert_eq!(tap.records.len(), 2);
    }
}
