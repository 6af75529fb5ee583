//! Frontend (client → server) messages: one encoder per message, each appending to a `Vec<u8>`.
//!
//! Messages: StartupMessage, CancelRequest, SSLRequest (tagless); PasswordMessage, SASLInitialResponse,
//! SASLResponse (all tag `p`); Query `Q`, Parse `P`, Bind `B`, Describe `D`, Execute `E`, Close `C`,
//! Sync `S`, Flush `H`, Terminate `X`.
//! Spec: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.
//!
//! Why append to a caller's buffer rather than return a `Vec` per message: one extended query is four
//! messages (Parse, Bind, Execute, Sync) and should leave in one `write(2)`. Appending lets the caller
//! batch them, and reuse the buffer's capacity across queries, so a warm connection encodes a query with
//! no allocation at all.
//!
//! Every encoder either appends one complete, well-formed message or returns an [`EncodeError`] and
//! leaves the buffer as it found it. Strings are NUL-terminated on the wire, so a string holding a NUL
//! is refused (the server would otherwise read a shorter string and misparse the rest of the message);
//! so is a message longer than the `Int32` length can say.

use memchr::memchr;

use super::{EncodeError, Format, Oid, CANCEL_REQUEST_CODE, LENGTH_SIZE, PROTOCOL_VERSION_3_0, SSL_REQUEST_CODE};

/// Tag of PasswordMessage, SASLInitialResponse and SASLResponse: the server knows which one from the
/// authentication exchange it is in.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE>
pub const PASSWORD_MESSAGE: u8 = b'p';
/// Tag of Query, the simple query protocol.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-QUERY>
pub const QUERY: u8 = b'Q';
/// Tag of Parse. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE>
pub const PARSE: u8 = b'P';
/// Tag of Bind. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND>
pub const BIND: u8 = b'B';
/// Tag of Describe. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE>
pub const DESCRIBE: u8 = b'D';
/// Tag of Execute. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE>
pub const EXECUTE: u8 = b'E';
/// Tag of Close. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE>
pub const CLOSE: u8 = b'C';
/// Tag of Sync. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SYNC>
pub const SYNC: u8 = b'S';
/// Tag of Flush. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FLUSH>
pub const FLUSH: u8 = b'H';
/// Tag of CopyData, a piece of `COPY ... FROM STDIN`'s stream (the server uses the same tag). <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDATA>
pub const COPY_DATA: u8 = b'd';
/// Tag of CopyDone: the client's stream is complete. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDONE>
pub const COPY_DONE: u8 = b'c';
/// Tag of CopyFail: abandon the COPY; the server answers with an ErrorResponse quoting the reason. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYFAIL>
pub const COPY_FAIL: u8 = b'f';
/// Tag of Terminate. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-TERMINATE>
pub const TERMINATE: u8 = b'X';

/// The byte that makes Describe or Close name a prepared statement.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE>
pub const TARGET_STATEMENT: u8 = b'S';
/// The byte that makes Describe or Close name a portal.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE>
pub const TARGET_PORTAL: u8 = b'P';

/// The length a Bind sends for a NULL parameter value (no bytes follow).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND>
pub const NULL_LENGTH: i32 = -1;

/// The longest message an `Int32` length can announce.
const MAX_MESSAGE_LEN: usize = i32::MAX as usize;

/// Sync, whole: it has no body, so it is the tag and a length of 4.
pub const SYNC_MESSAGE: [u8; 5] = [SYNC, 0, 0, 0, 4];
/// Flush, whole.
pub const FLUSH_MESSAGE: [u8; 5] = [FLUSH, 0, 0, 0, 4];
/// CopyDone, whole.
pub const COPY_DONE_MESSAGE: [u8; 5] = [COPY_DONE, 0, 0, 0, 4];
/// Terminate, whole.
pub const TERMINATE_MESSAGE: [u8; 5] = [TERMINATE, 0, 0, 0, 4];

/// The length of a CancelRequest: length, code, process id, secret key, four `Int32`s.
const CANCEL_REQUEST_LEN: i32 = 16;
/// The length of an SSLRequest: length and code.
const SSL_REQUEST_LEN: i32 = 8;

/// What [`describe`] and [`close`] refer to: a prepared statement or a portal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A prepared statement (`'S'`), made by Parse.
    Statement,
    /// A portal (`'P'`), made by Bind.
    Portal,
}

impl Target {
    fn byte(self) -> u8 {
        match self {
            Target::Statement => TARGET_STATEMENT,
            Target::Portal => TARGET_PORTAL,
        }
    }
}

/// Whether a Bind parameter, as written by the caller's encoder, is SQL NULL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsNull {
    /// The bytes the encoder appended are the value.
    No,
    /// The value is NULL; the encoder must not have appended anything.
    Yes,
}

// ANCHOR: framing
/// Append one message: the tag (if any), a placeholder length, the body, then the real length.
///
/// Writing the body first and patching the length after means no body is built in a scratch buffer
/// and copied: the bytes land where they will be sent. If the body fails, or ends up longer than an
/// `Int32` can count, the buffer is truncated back, so no half message is ever left behind.
fn message(
    buf: &mut Vec<u8>,
    tag: Option<u8>,
    name: &'static str,
    body: impl FnOnce(&mut Vec<u8>) -> Result<(), EncodeError>,
) -> Result<(), EncodeError> {
    let start = buf.len();
    if let Some(tag) = tag {
        buf.push(tag);
    }
    let len_at = buf.len();
    buf.extend_from_slice(&[0; LENGTH_SIZE]);
    if let Err(e) = body(buf) {
        buf.truncate(start);
        return Err(e);
    }
    let len = buf.len() - len_at;
    let Ok(len32) = i32::try_from(len) else {
        buf.truncate(start);
        return Err(EncodeError::TooLong { message: name, len });
    };
    buf[len_at..len_at + LENGTH_SIZE].copy_from_slice(&len32.to_be_bytes());
    Ok(())
}

/// Append `s` and its terminating NUL, refusing a string that already holds one.
fn cstr(buf: &mut Vec<u8>, s: &str, message: &'static str, field: &'static str) -> Result<(), EncodeError> {
    // A string this long can never fit; refuse it before copying gigabytes only to truncate them.
    if s.len() >= MAX_MESSAGE_LEN {
        return Err(EncodeError::TooLong { message, len: s.len() });
    }
    if memchr(0, s.as_bytes()).is_some() {
        return Err(EncodeError::InteriorNul { message, field });
    }
    buf.extend_from_slice(s.as_bytes());
    buf.push(0);
    Ok(())
}
// ANCHOR_END: framing

/// Append an `Int16` count. PostgreSQL reads these counts as unsigned 16-bit numbers
/// (`pq_getmsgint(msg, 2)`), so up to 65535 items are allowed, as in libpq.
fn count16(buf: &mut Vec<u8>, n: usize, message: &'static str, what: &'static str) -> Result<(), EncodeError> {
    let n16 = u16::try_from(n).map_err(|_| EncodeError::TooMany {
        message,
        what,
        count: n,
    })?;
    buf.extend_from_slice(&n16.to_be_bytes());
    Ok(())
}

fn formats(buf: &mut Vec<u8>, formats: &[Format], message: &'static str) -> Result<(), EncodeError> {
    count16(buf, formats.len(), message, "format codes")?;
    for f in formats {
        buf.extend_from_slice(&f.code().to_be_bytes());
    }
    Ok(())
}

// ANCHOR: startup
/// StartupMessage: the protocol version, then `name\0value\0` pairs, then a final `\0`.
/// `user` is required; `database` defaults to the user's name; any other pair is a run-time setting
/// (`client_encoding`, `application_name`, ...).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-STARTUPMESSAGE>
pub fn startup_message(buf: &mut Vec<u8>, params: &[(&str, &str)]) -> Result<(), EncodeError> {
    const NAME: &str = "StartupMessage";
    message(buf, None, NAME, |buf| {
        buf.extend_from_slice(&PROTOCOL_VERSION_3_0.to_be_bytes());
        for (name, value) in params {
            cstr(buf, name, NAME, "parameter name")?;
            cstr(buf, value, NAME, "parameter value")?;
        }
        buf.push(0);
        Ok(())
    })
}
// ANCHOR_END: startup

/// CancelRequest: sent on a *new* connection, instead of a StartupMessage, to ask the server to cancel
/// whatever the backend `process_id` is running. `secret_key` (from BackendKeyData) proves we own it.
/// The server answers nothing and closes the connection.
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-CANCELING-REQUESTS>
pub fn cancel_request(buf: &mut Vec<u8>, process_id: i32, secret_key: i32) {
    buf.extend_from_slice(&CANCEL_REQUEST_LEN.to_be_bytes());
    buf.extend_from_slice(&CANCEL_REQUEST_CODE.to_be_bytes());
    buf.extend_from_slice(&process_id.to_be_bytes());
    buf.extend_from_slice(&secret_key.to_be_bytes());
}

/// SSLRequest: asks whether the server will speak TLS on this connection (it answers one byte, `S` or
/// `N`). connlab does not use it yet; it is here so all first messages sit side by side.
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SSL>
pub fn ssl_request(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&SSL_REQUEST_LEN.to_be_bytes());
    buf.extend_from_slice(&SSL_REQUEST_CODE.to_be_bytes());
}

/// PasswordMessage: the cleartext password, or for MD5 the string from
/// [`auth::md5_password`](crate::pg::auth::md5_password).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PASSWORDMESSAGE>
pub fn password_message(buf: &mut Vec<u8>, password: &str) -> Result<(), EncodeError> {
    message(buf, Some(PASSWORD_MESSAGE), "PasswordMessage", |buf| {
        cstr(buf, password, "PasswordMessage", "password")
    })
}

/// SASLInitialResponse: the chosen mechanism (`SCRAM-SHA-256`) and the client-first-message.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLINITIALRESPONSE>
pub fn sasl_initial_response(buf: &mut Vec<u8>, mechanism: &str, data: &[u8]) -> Result<(), EncodeError> {
    const NAME: &str = "SASLInitialResponse";
    message(buf, Some(PASSWORD_MESSAGE), NAME, |buf| {
        cstr(buf, mechanism, NAME, "mechanism")?;
        let len = i32::try_from(data.len()).map_err(|_| EncodeError::TooLong {
            message: NAME,
            len: data.len(),
        })?;
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(data);
        Ok(())
    })
}

/// SASLResponse: a later SASL message (for SCRAM, the client-final-message). The body is the data,
/// with no length of its own: the message length says where it ends.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-SASLRESPONSE>
pub fn sasl_response(buf: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    message(buf, Some(PASSWORD_MESSAGE), "SASLResponse", |buf| {
        if data.len() > MAX_MESSAGE_LEN - LENGTH_SIZE {
            return Err(EncodeError::TooLong {
                message: "SASLResponse",
                len: data.len() + LENGTH_SIZE,
            });
        }
        buf.extend_from_slice(data);
        Ok(())
    })
}

/// Query: the simple query protocol. The string may hold several `;`-separated statements; the server
/// answers each with its own results and then one ReadyForQuery.
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-SIMPLE-QUERY>
pub fn query(buf: &mut Vec<u8>, sql: &str) -> Result<(), EncodeError> {
    message(buf, Some(QUERY), "Query", |buf| cstr(buf, sql, "Query", "query string"))
}

// ANCHOR: parse
/// Parse: prepare `sql` as statement `name` (`""` is the unnamed statement, replaced by the next
/// Parse). `param_types` may be shorter than the number of `$n` placeholders, or empty; `0` lets the
/// server infer a type.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSE>
pub fn parse(buf: &mut Vec<u8>, name: &str, sql: &str, param_types: &[Oid]) -> Result<(), EncodeError> {
    const NAME: &str = "Parse";
    message(buf, Some(PARSE), NAME, |buf| {
        cstr(buf, name, NAME, "statement name")?;
        cstr(buf, sql, NAME, "query string")?;
        count16(buf, param_types.len(), NAME, "parameter types")?;
        for oid in param_types {
            buf.extend_from_slice(&oid.to_be_bytes());
        }
        Ok(())
    })
}
// ANCHOR_END: parse

// ANCHOR: bind
/// Bind: make portal `portal` from prepared statement `statement`, with parameter values.
///
/// `param_formats` holds zero codes (all text), one (applies to all) or one per parameter; the same
/// rule holds for `result_formats`. Each parameter is written by `encode`, which appends the value's
/// bytes straight into the message and says whether it was NULL, so no value is built in a temporary
/// buffer. (The alternative, a `&[Option<&[u8]>]`, would make every caller encode its values somewhere
/// first.) A parameter is sent as its `Int32` length then its bytes, or as length -1 for NULL.
///
/// ```
/// use connlab::pg::protocol::{frontend, Format};
/// let mut buf = Vec::new();
/// let params: [Option<&[u8]>; 1] = [Some(b"42")];
/// frontend::bind(&mut buf, "", "", &[Format::Text], &params, |p, out| frontend::write_nullable(*p, out), &[])?;
/// # Ok::<(), connlab::pg::protocol::EncodeError>(())
/// ```
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BIND>
pub fn bind<T>(
    buf: &mut Vec<u8>,
    portal: &str,
    statement: &str,
    param_formats: &[Format],
    params: &[T],
    mut encode: impl FnMut(&T, &mut Vec<u8>) -> IsNull,
    result_formats: &[Format],
) -> Result<(), EncodeError> {
    const NAME: &str = "Bind";
    message(buf, Some(BIND), NAME, |buf| {
        cstr(buf, portal, NAME, "portal name")?;
        cstr(buf, statement, NAME, "statement name")?;
        formats(buf, param_formats, NAME)?;
        count16(buf, params.len(), NAME, "parameters")?;
        for param in params {
            let len_at = buf.len();
            buf.extend_from_slice(&NULL_LENGTH.to_be_bytes());
            if encode(param, buf) == IsNull::Yes {
                buf.truncate(len_at + LENGTH_SIZE);
                continue;
            }
            let len = buf.len() - len_at - LENGTH_SIZE;
            let len32 = i32::try_from(len).map_err(|_| EncodeError::TooLong { message: NAME, len })?;
            buf[len_at..len_at + LENGTH_SIZE].copy_from_slice(&len32.to_be_bytes());
        }
        formats(buf, result_formats, NAME)
    })
}
// ANCHOR_END: bind

/// The [`bind`] encoder for values already in bytes: `None` is NULL.
pub fn write_nullable(value: Option<&[u8]>, buf: &mut Vec<u8>) -> IsNull {
    match value {
        Some(bytes) => {
            buf.extend_from_slice(bytes);
            IsNull::No
        }
        None => IsNull::Yes,
    }
}

/// Describe: ask for a statement's ParameterDescription and RowDescription (or NoData), or a
/// portal's RowDescription.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DESCRIBE>
pub fn describe(buf: &mut Vec<u8>, target: Target, name: &str) -> Result<(), EncodeError> {
    message(buf, Some(DESCRIBE), "Describe", |buf| {
        buf.push(target.byte());
        cstr(buf, name, "Describe", "name")
    })
}

/// Execute: run portal `portal`, returning at most `max_rows` rows (0 means all; if the limit cuts
/// the result short the server sends PortalSuspended instead of CommandComplete).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EXECUTE>
pub fn execute(buf: &mut Vec<u8>, portal: &str, max_rows: i32) -> Result<(), EncodeError> {
    message(buf, Some(EXECUTE), "Execute", |buf| {
        cstr(buf, portal, "Execute", "portal name")?;
        buf.extend_from_slice(&max_rows.to_be_bytes());
        Ok(())
    })
}

/// Close: drop a prepared statement or portal (closing one that does not exist is not an error).
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSE>
pub fn close(buf: &mut Vec<u8>, target: Target, name: &str) -> Result<(), EncodeError> {
    message(buf, Some(CLOSE), "Close", |buf| {
        buf.push(target.byte());
        cstr(buf, name, "Close", "name")
    })
}

/// Sync: ends an extended-query batch. The server commits an implicit transaction, and, if a message
/// of the batch failed, this is where it stops skipping; it answers with ReadyForQuery.
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-EXT-QUERY>
pub fn sync(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&SYNC_MESSAGE);
}

/// Flush: ask the server to send what it has buffered, without ending the batch as Sync would.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FLUSH>
pub fn flush(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&FLUSH_MESSAGE);
}

/// CopyData: `data` as is, in whatever COPY format the statement named. Rows may be split across
/// messages or share one: the server treats the messages as one stream.
pub fn copy_data(buf: &mut Vec<u8>, data: &[u8]) -> Result<(), EncodeError> {
    message(buf, Some(COPY_DATA), "CopyData", |b| {
        b.extend_from_slice(data);
        Ok(())
    })
}

/// CopyDone: the stream is complete; the server answers CommandComplete (`COPY n`) and ReadyForQuery.
pub fn copy_done(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&COPY_DONE_MESSAGE);
}

/// CopyFail: abandon `COPY ... FROM STDIN`; the server rolls it back and answers an ErrorResponse
/// (`57014`) that quotes `reason`, then ReadyForQuery.
pub fn copy_fail(buf: &mut Vec<u8>, reason: &str) -> Result<(), EncodeError> {
    message(buf, Some(COPY_FAIL), "CopyFail", |b| {
        cstr(b, reason, "CopyFail", "reason")
    })
}

/// Terminate: the polite goodbye before closing the socket. Without it the backend reads EOF and
/// exits just the same, logging "unexpected EOF on client connection": at DEBUG1 (unseen with the
/// default `log_min_messages`) when the session was idle, as an error when a transaction was open
/// (which is rolled back either way).
/// <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-TERMINATION>
pub fn terminate(buf: &mut Vec<u8>) {
    buf.extend_from_slice(&TERMINATE_MESSAGE);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_is_tag_length_string_nul() {
        let mut buf = Vec::new();
        query(&mut buf, "SELECT 1").unwrap();
        assert_eq!(buf, b"Q\0\0\0\x0dSELECT 1\0");
    }

    #[test]
    fn interior_nul_is_refused_and_buffer_untouched() {
        let mut buf = b"keep".to_vec();
        let err = parse(&mut buf, "", "SELECT 1\0; DROP TABLE x", &[]).unwrap_err();
        assert_eq!(
            err,
            EncodeError::InteriorNul {
                message: "Parse",
                field: "query string"
            }
        );
        assert_eq!(buf, b"keep");
    }

    #[test]
    fn bind_writes_null_as_minus_one_without_bytes() {
        let mut buf = Vec::new();
        let params: [Option<&[u8]>; 2] = [Some(b"7"), None];
        bind(
            &mut buf,
            "",
            "s1",
            &[],
            &params,
            |p, out| write_nullable(*p, out),
            &[Format::Binary],
        )
        .unwrap();
        let expected: &[u8] = b"B\0\0\0\x19\0s1\0\0\0\0\x02\0\0\0\x017\xff\xff\xff\xff\0\x01\0\x01";
        assert_eq!(buf, expected);
    }

    #[test]
    fn too_many_parameters_is_an_error() {
        let mut buf = Vec::new();
        let types = vec![0; usize::from(u16::MAX) + 1];
        let err = parse(&mut buf, "", "SELECT 1", &types).unwrap_err();
        assert!(matches!(err, EncodeError::TooMany { count: 65536, .. }));
        assert!(buf.is_empty());
    }

    #[test]
    fn message_over_i32_max_is_an_error_and_buffer_untouched() {
        // `vec![0; n]` asks for zeroed memory, which the kernel maps lazily: 2 GiB of address space,
        // no RAM, since the encoder refuses the length before it reads a byte.
        let huge = vec![0u8; MAX_MESSAGE_LEN + 1];
        let mut buf = b"keep".to_vec();
        let err = sasl_initial_response(&mut buf, "SCRAM-SHA-256", &huge).unwrap_err();
        assert_eq!(
            err,
            EncodeError::TooLong {
                message: "SASLInitialResponse",
                len: MAX_MESSAGE_LEN + 1
            }
        );
        assert_eq!(buf, b"keep");
    }

    #[test]
    fn cancel_request_is_sixteen_bytes_with_the_magic_code() {
        let mut buf = Vec::new();
        cancel_request(&mut buf, 4242, -7);
        assert_eq!(buf.len(), 16);
        assert_eq!(&buf[4..8], &80877102i32.to_be_bytes());
    }
}
