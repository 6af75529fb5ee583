//! `pg::protocol`: the PostgreSQL frontend/backend wire protocol, version 3.0, with no I/O.
//!
//! Bytes in, messages out; messages in, bytes out. Nothing here owns a socket, so the same code serves
//! the reactor-driven [`Connection`](crate::pg::connection), the tests (which replay recorded
//! transcripts) and the benchmarks.
//!
//! - [`frontend`]: encoders for every message a client sends (StartupMessage, Query, Parse, Bind, ...).
//!   Each one *appends* to a caller-owned `Vec<u8>`, so a batch such as Parse+Bind+Execute+Sync becomes
//!   one buffer and one `write(2)`.
//! - [`backend`]: a [`Decoder`] for every message a server sends. It answers "need more bytes"
//!   (`Ok(None)`) or hands back one [`Message`] that borrows from the input, and how many bytes it used.
//!
//! # Framing
//!
//! Every message after the first is `tag: u8, length: i32 (big-endian, counts itself but not the
//! tag), body`. The client's very first message (StartupMessage, and the CancelRequest and
//! SSLRequest that can stand in for it) has no tag: it starts with the length and then a 32-bit code
//! saying what it is. Spec: <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-MESSAGE-CONCEPTS>
//! and <https://www.postgresql.org/docs/current/protocol-message-formats.html>.

use std::fmt;
use std::io;

pub mod backend;
pub mod frontend;

pub use backend::{Authentication, DataRow, DbError, Decoder, Message, RowDescription, TransactionStatus};

/// A type's object id in `pg_type` (`23` is `int4`). The protocol sends it as an `Int32` that is
/// really unsigned.
pub type Oid = u32;

/// The protocol version we speak, 3.0, as the StartupMessage's first field: major in the high 16
/// bits, minor in the low 16 (`196608`).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE>
pub const PROTOCOL_VERSION_3_0: i32 = 3 << 16;

/// The code that makes a tagless first message a CancelRequest (`1234 << 16 | 5678`).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CANCELREQUEST>
pub const CANCEL_REQUEST_CODE: i32 = (1234 << 16) | 5678;

/// The code that makes a tagless first message an SSLRequest (`1234 << 16 | 5679`). connlab does not
/// speak TLS yet; the constant is here so the reader sees all three first messages.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SSLREQUEST>
pub const SSL_REQUEST_CODE: i32 = (1234 << 16) | 5679;

/// The code of a GSSENCRequest (`1234 << 16 | 5680`), the fourth possible first message; for
/// completeness only. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-GSSENCREQUEST>
pub const GSSENC_REQUEST_CODE: i32 = (1234 << 16) | 5680;

/// The size of a message's length field: an `Int32` that counts itself.
pub const LENGTH_SIZE: usize = 4;

/// The size of a tag plus a length: the bytes needed before a message's size is known.
pub const HEADER_SIZE: usize = 1 + LENGTH_SIZE;

/// How a parameter or result column travels: as text (`0`) or in the type's binary form (`1`).
/// <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES>
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    /// Format code 0: the type's text output, e.g. `42` as the two bytes `"42"`.
    Text,
    /// Format code 1: the type's binary `send` form, e.g. `int4` 42 as four big-endian bytes.
    Binary,
}

/// Format code `0`, text. <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES>
pub const FORMAT_TEXT: i16 = 0;
/// Format code `1`, binary. <https://www.postgresql.org/docs/current/protocol-overview.html#PROTOCOL-FORMAT-CODES>
pub const FORMAT_BINARY: i16 = 1;

impl Format {
    /// The wire code: 0 or 1.
    pub fn code(self) -> i16 {
        match self {
            Format::Text => FORMAT_TEXT,
            Format::Binary => FORMAT_BINARY,
        }
    }

    /// The format for a wire code, or `None` for anything but 0 and 1.
    pub fn from_code(code: i16) -> Option<Format> {
        match code {
            FORMAT_TEXT => Some(Format::Text),
            FORMAT_BINARY => Some(Format::Binary),
            _ => None,
        }
    }
}

/// An outgoing message that cannot be encoded. The buffer is left exactly as it was before the call:
/// a half-written message would desynchronise the whole connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EncodeError {
    /// A string field holds a NUL byte. The protocol ends strings with NUL, so the server would read
    /// a shorter string and then misparse the rest of the message as the next field.
    InteriorNul {
        /// The message, e.g. `"Query"`.
        message: &'static str,
        /// The field, e.g. `"query string"`.
        field: &'static str,
    },
    /// The message would be longer than its `Int32` length field can say (`i32::MAX` bytes).
    TooLong {
        /// The message, e.g. `"Bind"`.
        message: &'static str,
        /// Its length in bytes (including the length field itself).
        len: usize,
    },
    /// More items than an `Int16` count allows (parameters, format codes, type oids).
    TooMany {
        /// The message, e.g. `"Bind"`.
        message: &'static str,
        /// What was counted, e.g. `"parameters"`.
        what: &'static str,
        /// How many there were.
        count: usize,
    },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EncodeError::InteriorNul { message, field } => {
                write!(f, "cannot encode {message}: the {field} contains a NUL byte")
            }
            EncodeError::TooLong { message, len } => {
                write!(
                    f,
                    "cannot encode {message}: {len} bytes is over the protocol's limit of {} bytes",
                    i32::MAX
                )
            }
            EncodeError::TooMany { message, what, count } => {
                write!(
                    f,
                    "cannot encode {message}: {count} {what} is over the protocol's limit of {}",
                    u16::MAX
                )
            }
        }
    }
}

impl std::error::Error for EncodeError {}

impl From<EncodeError> for io::Error {
    fn from(e: EncodeError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

/// Bytes from the server that break the protocol. After one of these the stream cannot be trusted
/// to be at a message boundary: the connection must be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolError {
    /// A length field under 4: it must at least count itself.
    LengthTooSmall {
        /// The message's tag byte.
        tag: u8,
        /// The length it announced.
        len: i32,
    },
    /// A length field over the decoder's cap ([`Decoder::max_message_len`]).
    TooLong {
        /// The message's tag byte.
        tag: u8,
        /// The length it announced.
        len: usize,
        /// The cap.
        max: usize,
    },
    /// A tag byte that no backend message uses.
    UnknownTag(u8),
    /// A message whose body ends before all its fields (or a count promising more than the frame holds).
    Truncated {
        /// The message, e.g. `"DataRow"`.
        message: &'static str,
        /// What was being read, e.g. `"field 3's value"`.
        what: &'static str,
    },
    /// A message that ends with bytes its fields do not account for.
    TrailingBytes {
        /// The message.
        message: &'static str,
        /// How many bytes were left over.
        extra: usize,
    },
    /// A text field that is not UTF-8. connlab asks for `client_encoding=UTF8`, so this is a broken
    /// or hostile server, not a setting.
    InvalidUtf8 {
        /// The message.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A ReadyForQuery whose status is not `I`, `T` or `E`.
    BadTransactionStatus(u8),
    /// A field with a value outside its domain (a negative count, a format code of 7, an
    /// Authentication code nobody defined, a missing required field).
    Invalid {
        /// The message.
        message: &'static str,
        /// What is wrong, e.g. `"negative column count"`.
        what: &'static str,
        /// The offending value, when it is a number.
        value: Option<i64>,
    },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::LengthTooSmall { tag, len } => {
                write!(
                    f,
                    "protocol error: message {} has length {len} (minimum is 4)",
                    TagName(*tag)
                )
            }
            ProtocolError::TooLong { tag, len, max } => {
                write!(
                    f,
                    "protocol error: message {} has length {len}, over the cap of {max} bytes",
                    TagName(*tag)
                )
            }
            ProtocolError::UnknownTag(tag) => write!(f, "protocol error: unknown message tag {}", TagName(*tag)),
            ProtocolError::Truncated { message, what } => {
                write!(f, "protocol error: {message} ends before its {what}")
            }
            ProtocolError::TrailingBytes { message, extra } => {
                write!(f, "protocol error: {message} has {extra} unexpected trailing bytes")
            }
            ProtocolError::InvalidUtf8 { message, field } => {
                write!(f, "protocol error: {message}'s {field} is not valid UTF-8")
            }
            ProtocolError::BadTransactionStatus(s) => {
                write!(
                    f,
                    "protocol error: ReadyForQuery status {} is not I, T or E",
                    TagName(*s)
                )
            }
            ProtocolError::Invalid {
                message,
                what,
                value: Some(value),
            } => {
                write!(f, "protocol error: {message} has {what} ({value})")
            }
            ProtocolError::Invalid {
                message,
                what,
                value: None,
            } => write!(f, "protocol error: {message} has {what}"),
        }
    }
}

impl std::error::Error for ProtocolError {}

impl From<ProtocolError> for io::Error {
    fn from(e: ProtocolError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidData, e)
    }
}

/// A tag byte shown for humans: `'Z'` when printable, `0x00` otherwise.
struct TagName(u8);

impl fmt::Display for TagName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", self.0 as char)
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}
