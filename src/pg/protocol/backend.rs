//! Backend (server → client) messages: a [`Decoder`] that turns bytes into [`Message`]s.
//!
//! Messages: Authentication* `R`, BackendKeyData `K`, ParameterStatus `S`, ReadyForQuery `Z`,
//! RowDescription `T`, DataRow `D`, CommandComplete `C`, EmptyQueryResponse `I`, ErrorResponse `E`,
//! NoticeResponse `N`, NotificationResponse `A`, ParseComplete `1`, BindComplete `2`, CloseComplete `3`,
//! NoData `n`, ParameterDescription `t`, PortalSuspended `s`, NegotiateProtocolVersion `v`.
//! Spec: <https://www.postgresql.org/docs/current/protocol-message-formats.html>.
//!
//! # Need more bytes is a state
//!
//! A `read(2)` returns whatever arrived: half a message, or three and a bit. [`Decoder::decode`] looks
//! at the front of the caller's buffer and answers `Ok(None)` ("not a whole message yet: read more and
//! call again") or `Ok(Some((message, n)))` ("here is one; drop `n` bytes from the front"). Only bytes
//! that break the protocol are an `Err`, and after one the connection is beyond repair: we no longer
//! know where the next message starts.
//!
//! # Hostile input
//!
//! The server is a peer on the network, so every byte is checked: a length under 4, a length over a
//! cap, an unknown tag, counts that promise more than the frame holds, bytes left over at the end, text
//! that is not UTF-8, a transaction status that is not `I`/`T`/`E`. Nothing is allocated from a length
//! field: the decoder waits for the bytes to actually arrive, and the caller's buffer only ever grows by
//! what `read(2)` delivered. Messages borrow from the buffer; the one exception is [`DbError`], owned
//! because it outlives the buffer inside an error value, and errors are rare.

use std::fmt;
use std::ops::Range;

use memchr::memchr;

use super::{Format, Oid, ProtocolError, HEADER_SIZE, LENGTH_SIZE};

/// Tag of every Authentication* message; an `Int32` code in the body says which.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK>
pub const AUTHENTICATION: u8 = b'R';
/// Tag of BackendKeyData. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BACKENDKEYDATA>
pub const BACKEND_KEY_DATA: u8 = b'K';
/// Tag of ParameterStatus. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERSTATUS>
pub const PARAMETER_STATUS: u8 = b'S';
/// Tag of ReadyForQuery. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY>
pub const READY_FOR_QUERY: u8 = b'Z';
/// Tag of RowDescription. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ROWDESCRIPTION>
pub const ROW_DESCRIPTION: u8 = b'T';
/// Tag of DataRow. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-DATAROW>
pub const DATA_ROW: u8 = b'D';
/// Tag of CommandComplete. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COMMANDCOMPLETE>
pub const COMMAND_COMPLETE: u8 = b'C';
/// Tag of EmptyQueryResponse. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-EMPTYQUERYRESPONSE>
pub const EMPTY_QUERY_RESPONSE: u8 = b'I';
/// Tag of ErrorResponse. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-ERRORRESPONSE>
pub const ERROR_RESPONSE: u8 = b'E';
/// Tag of NoticeResponse. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTICERESPONSE>
pub const NOTICE_RESPONSE: u8 = b'N';
/// Tag of NotificationResponse (LISTEN/NOTIFY). <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NOTIFICATIONRESPONSE>
pub const NOTIFICATION_RESPONSE: u8 = b'A';
/// Tag of ParseComplete. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARSECOMPLETE>
pub const PARSE_COMPLETE: u8 = b'1';
/// Tag of BindComplete. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-BINDCOMPLETE>
pub const BIND_COMPLETE: u8 = b'2';
/// Tag of CloseComplete. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-CLOSECOMPLETE>
pub const CLOSE_COMPLETE: u8 = b'3';
/// Tag of NoData. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NODATA>
pub const NO_DATA: u8 = b'n';
/// Tag of ParameterDescription. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PARAMETERDESCRIPTION>
pub const PARAMETER_DESCRIPTION: u8 = b't';
/// Tag of PortalSuspended. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-PORTALSUSPENDED>
pub const PORTAL_SUSPENDED: u8 = b's';
/// Tag of NegotiateProtocolVersion. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-NEGOTIATEPROTOCOLVERSION>
pub const NEGOTIATE_PROTOCOL_VERSION: u8 = b'v';

/// Tag of CopyInResponse (`COPY ... FROM STDIN`): the server is ready for CopyData.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYINRESPONSE>
pub const COPY_IN_RESPONSE: u8 = b'G';
/// Tag of CopyOutResponse (`COPY ... TO STDOUT`): CopyData messages follow.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYOUTRESPONSE>
pub const COPY_OUT_RESPONSE: u8 = b'H';
/// Tag of CopyBothResponse (replication); recognised, not supported.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYBOTHRESPONSE>
pub const COPY_BOTH_RESPONSE: u8 = b'W';
/// Tag of CopyData: a piece of a COPY stream (one row, for `COPY ... TO STDOUT`). <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDATA>
pub const COPY_DATA: u8 = b'd';
/// Tag of CopyDone: the end of a COPY stream. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-COPYDONE>
pub const COPY_DONE: u8 = b'c';
/// Tag of FunctionCallResponse (the legacy fast-path); recognised, not supported.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-FUNCTIONCALLRESPONSE>
pub const FUNCTION_CALL_RESPONSE: u8 = b'V';

/// Authentication code 0: AuthenticationOk. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONOK>
pub const AUTH_OK: i32 = 0;
/// Authentication code 2: AuthenticationKerberosV5 (no longer sent by servers since 9.4).
pub const AUTH_KERBEROS_V5: i32 = 2;
/// Authentication code 3: AuthenticationCleartextPassword. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONCLEARTEXTPASSWORD>
pub const AUTH_CLEARTEXT_PASSWORD: i32 = 3;
/// Authentication code 5: AuthenticationMD5Password, with a 4-byte salt. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONMD5PASSWORD>
pub const AUTH_MD5_PASSWORD: i32 = 5;
/// Authentication code 7: AuthenticationGSS. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONGSS>
pub const AUTH_GSS: i32 = 7;
/// Authentication code 8: AuthenticationGSSContinue. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONGSSCONTINUE>
pub const AUTH_GSS_CONTINUE: i32 = 8;
/// Authentication code 9: AuthenticationSSPI. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSSPI>
pub const AUTH_SSPI: i32 = 9;
/// Authentication code 10: AuthenticationSASL, with the mechanism list. <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASL>
pub const AUTH_SASL: i32 = 10;
/// Authentication code 11: AuthenticationSASLContinue (SCRAM's server-first-message). <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASLCONTINUE>
pub const AUTH_SASL_CONTINUE: i32 = 11;
/// Authentication code 12: AuthenticationSASLFinal (SCRAM's server-final-message). <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-AUTHENTICATIONSASLFINAL>
pub const AUTH_SASL_FINAL: i32 = 12;

/// The length of an MD5 salt.
pub const MD5_SALT_LEN: usize = 4;

/// ReadyForQuery status `I`: idle, not in a transaction block.
/// <https://www.postgresql.org/docs/current/protocol-message-formats.html#PROTOCOL-MESSAGE-FORMATS-READYFORQUERY>
pub const STATUS_IDLE: u8 = b'I';
/// ReadyForQuery status `T`: inside a transaction block.
pub const STATUS_IN_TRANSACTION: u8 = b'T';
/// ReadyForQuery status `E`: inside a failed transaction block (everything is refused until ROLLBACK).
pub const STATUS_FAILED: u8 = b'E';

/// The decoder's default cap on one message's length: 1 GiB.
///
/// Why this number: the server builds each message in a `StringInfo`, which cannot grow past
/// `MaxAllocSize` (1 GiB - 1), so no real server sends anything longer; a lower default would refuse
/// legitimate large `bytea` rows. The cap does not protect memory (the decoder never allocates by the
/// length; the caller's buffer grows only as bytes really arrive); it catches a stream that is not
/// PostgreSQL at all: an HTTP server's `"HTTP/1.1"` read as a tag and length announces 1.4 GB. A
/// client that knows its rows are small can lower it with [`Decoder::with_max_message_len`].
pub const DEFAULT_MAX_MESSAGE_LEN: usize = 1 << 30;

/// The longest a message may be unless its tag is one that can carry a large payload
/// ([`may_be_long`]): 30,000 bytes, libpq's own sanity limit (`pqParseInput3`). Authentication
/// requests, ParameterStatus, ReadyForQuery and the other control messages are a few hundred bytes at
/// most, so a header announcing more is a stream out of step or a hostile server, refused before any
/// of its body is awaited.
pub const MAX_SHORT_MESSAGE_LEN: usize = 30_000;

/// The tags whose messages can be large: rows (RowDescription, DataRow), COPY data, a function
/// call's result, errors and notices (whose text a server can fill), notifications (a payload of up
/// to 8000 bytes) — libpq's list — plus ParameterDescription, which for a statement with 65,535
/// parameters is 262 KB.
pub fn may_be_long(tag: u8) -> bool {
    matches!(
        tag,
        ROW_DESCRIPTION
            | DATA_ROW
            | COPY_DATA
            | FUNCTION_CALL_RESPONSE
            | ERROR_RESPONSE
            | NOTICE_RESPONSE
            | NOTIFICATION_RESPONSE
            | PARAMETER_DESCRIPTION
    )
}

/// Common SQLSTATE codes, for matching [`DbError::code`].
/// <https://www.postgresql.org/docs/current/errcodes-appendix.html>
pub mod sqlstate {
    /// `57014` query_canceled: a CancelRequest (or `statement_timeout`) stopped the query.
    pub const QUERY_CANCELED: &str = "57014";
    /// `28P01` invalid_password.
    pub const INVALID_PASSWORD: &str = "28P01";
    /// `28000` invalid_authorization_specification (e.g. no `pg_hba.conf` entry).
    pub const INVALID_AUTHORIZATION_SPECIFICATION: &str = "28000";
    /// `42601` syntax_error.
    pub const SYNTAX_ERROR: &str = "42601";
    /// `42P01` undefined_table.
    pub const UNDEFINED_TABLE: &str = "42P01";
    /// `22012` division_by_zero.
    pub const DIVISION_BY_ZERO: &str = "22012";
    /// `23505` unique_violation.
    pub const UNIQUE_VIOLATION: &str = "23505";
    /// `25P02` in_failed_sql_transaction: a statement sent after an error, before ROLLBACK.
    pub const IN_FAILED_SQL_TRANSACTION: &str = "25P02";
    /// `57P01` admin_shutdown: the backend was terminated (`pg_terminate_backend`, server shutdown).
    pub const ADMIN_SHUTDOWN: &str = "57P01";
    /// `53300` too_many_connections.
    pub const TOO_MANY_CONNECTIONS: &str = "53300";
    /// `26000` invalid_sql_statement_name: no prepared statement by that name (`DEALLOCATE`d, or another backend).
    pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";
    /// `0A000` feature_not_supported; also "cached plan must not change result type" after an `ALTER TABLE`.
    pub const FEATURE_NOT_SUPPORTED: &str = "0A000";
}

/// The transaction state the server reports in every ReadyForQuery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransactionStatus {
    /// `I`: not in a transaction block.
    Idle,
    /// `T`: in a transaction block.
    InTransaction,
    /// `E`: in a failed transaction block; queries are refused until the block ends.
    Failed,
}

impl TransactionStatus {
    /// The status byte: `I`, `T` or `E`.
    pub fn byte(self) -> u8 {
        match self {
            TransactionStatus::Idle => STATUS_IDLE,
            TransactionStatus::InTransaction => STATUS_IN_TRANSACTION,
            TransactionStatus::Failed => STATUS_FAILED,
        }
    }
}

/// One backend message, borrowing from the decoder's input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// `R`: a step of authentication.
    Authentication(Authentication<'a>),
    /// `K`: what a CancelRequest must quote to cancel this backend's query.
    BackendKeyData {
        /// The backend's process id (the `pid` in `pg_stat_activity`).
        process_id: i32,
        /// A random key that proves a cancel request comes from us.
        secret_key: i32,
    },
    /// `S`: a run-time setting the client should know (`server_version`, `client_encoding`,
    /// `TimeZone`, ...), at startup and whenever it changes.
    ParameterStatus {
        /// The setting's name.
        name: &'a str,
        /// Its new value.
        value: &'a str,
    },
    /// `Z`: the server is ready for the next query; the transaction state.
    ReadyForQuery(TransactionStatus),
    /// `T`: the columns of the rows that follow.
    RowDescription(RowDescription<'a>),
    /// `D`: one row.
    DataRow(DataRow<'a>),
    /// `C`: a statement finished; its command tag (`SELECT 3`, `INSERT 0 1`, `BEGIN`).
    CommandComplete {
        /// The command tag.
        tag: &'a str,
    },
    /// `I`: the query string was empty.
    EmptyQueryResponse,
    /// `E`: the statement (or the connection attempt) failed.
    ErrorResponse(DbError),
    /// `N`: a warning or note; not a failure.
    NoticeResponse(DbError),
    /// `A`: a NOTIFY on a channel this session LISTENs to.
    NotificationResponse {
        /// The notifying backend's process id.
        process_id: i32,
        /// The channel name.
        channel: &'a str,
        /// The payload (may be empty).
        payload: &'a str,
    },
    /// `1`: Parse succeeded.
    ParseComplete,
    /// `2`: Bind succeeded.
    BindComplete,
    /// `3`: Close succeeded.
    CloseComplete,
    /// `n`: the described statement or portal returns no rows.
    NoData,
    /// `t`: the parameter types of a described statement.
    ParameterDescription(ParameterDescription<'a>),
    /// `s`: Execute's row limit was reached before the portal was exhausted.
    PortalSuspended,
    /// `v`: the server does not support the requested minor version or some `_pq_.` options.
    NegotiateProtocolVersion {
        /// The newest minor protocol version the server supports.
        newest_minor: i32,
        /// The protocol options it did not recognise.
        unrecognized: StrList<'a>,
    },
    /// `G`: `COPY ... FROM STDIN` began; the server waits for CopyData, then CopyDone or CopyFail.
    CopyInResponse(CopyResponse),
    /// `H`: `COPY ... TO STDOUT` began; CopyData messages follow, then CopyDone.
    CopyOutResponse(CopyResponse),
    /// `d`: a piece of a COPY stream, as is (text, CSV or binary COPY format).
    CopyData(&'a [u8]),
    /// `c`: the end of the server's COPY stream.
    CopyDone,
    /// A real backend message that connlab does not handle (CopyBothResponse, FunctionCallResponse).
    /// It is framed correctly, so the stream is still in sync; what to do is the caller's choice.
    Unsupported {
        /// The tag byte.
        tag: u8,
        /// The message's name, e.g. `"CopyInResponse"`.
        name: &'static str,
        /// The undecoded body.
        body: &'a [u8],
    },
}

/// The body of CopyInResponse and CopyOutResponse: the overall format and
/// the number of columns (each column's own format code is checked, not kept).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyResponse {
    /// `COPY ... (FORMAT binary)`; otherwise text or CSV.
    pub binary: bool,
    /// How many columns each row has.
    pub columns: u16,
}

/// The body of an `R` message, by its code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Authentication<'a> {
    /// Code 0: authenticated (startup continues with ParameterStatus, BackendKeyData, ReadyForQuery).
    Ok,
    /// Code 2: Kerberos V5 (obsolete).
    KerberosV5,
    /// Code 3: send the password in clear.
    CleartextPassword,
    /// Code 5: send `"md5" + md5(md5(password + user) + salt)`.
    Md5Password {
        /// Four random bytes, so a captured answer cannot be replayed.
        salt: [u8; MD5_SALT_LEN],
    },
    /// Code 7: GSSAPI.
    Gss,
    /// Code 8: more GSSAPI or SSPI data.
    GssContinue(&'a [u8]),
    /// Code 9: SSPI (Windows).
    Sspi,
    /// Code 10: SASL; the mechanisms the server offers, in its order of preference.
    Sasl(StrList<'a>),
    /// Code 11: a SASL challenge (SCRAM's server-first-message).
    SaslContinue(&'a [u8]),
    /// Code 12: the SASL outcome (SCRAM's server-final-message, with the server's signature).
    SaslFinal(&'a [u8]),
}

impl Authentication<'_> {
    /// The method's name as a reader knows it: `"SCRAM (SASL)"`, `"MD5"`, `"GSSAPI"`...
    pub fn method_name(&self) -> &'static str {
        match self {
            Authentication::Ok => "none (trust)",
            Authentication::KerberosV5 => "Kerberos V5",
            Authentication::CleartextPassword => "cleartext password",
            Authentication::Md5Password { .. } => "MD5",
            Authentication::Gss | Authentication::GssContinue(_) => "GSSAPI",
            Authentication::Sspi => "SSPI",
            Authentication::Sasl(_) | Authentication::SaslContinue(_) | Authentication::SaslFinal(_) => "SASL",
        }
    }
}

/// A list of NUL-terminated UTF-8 strings inside a message, validated when the message was decoded
/// (SASL mechanisms, unrecognised protocol options).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct StrList<'a> {
    /// The strings, each with its NUL; nothing else.
    body: &'a [u8],
}

impl<'a> StrList<'a> {
    /// The strings, in order.
    pub fn iter(&self) -> impl Iterator<Item = &'a str> + 'a {
        // Each piece ends with its NUL; `decode` checked the UTF-8, so `unwrap_or_default` never fires
        // (it stands in for an `unwrap` that could panic if that invariant were ever broken).
        self.body
            .split_inclusive(|&b| b == 0)
            .map(|s| std::str::from_utf8(s.strip_suffix(&[0]).unwrap_or(s)).unwrap_or_default())
    }
}

impl fmt::Debug for StrList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// A RowDescription, validated when decoded; iterate its [`Column`]s.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RowDescription<'a> {
    len: u16,
    /// The column entries, after the count.
    body: &'a [u8],
}

/// One column of a [`RowDescription`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column<'a> {
    /// The column's name (`?column?` for an unnamed expression).
    pub name: &'a str,
    /// The table's oid if the column is a plain table column, else 0.
    pub table_oid: Oid,
    /// The column's attribute number in that table, else 0.
    pub column_id: i16,
    /// The type's oid (`23` int4, `25` text, ...).
    pub type_oid: Oid,
    /// The type's size (`pg_type.typlen`); negative for variable-length types.
    pub type_size: i16,
    /// The type modifier (`pg_attribute.atttypmod`), e.g. a varchar's length + 4.
    pub type_modifier: i32,
    /// The format the values will arrive in. (In a RowDescription that answers Describe of a
    /// statement, the format is not yet known and is always text.)
    pub format: Format,
}

impl<'a> RowDescription<'a> {
    /// How many columns.
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for a row of no columns (`SELECT;` is legal).
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The columns, in order.
    pub fn columns(&self) -> impl Iterator<Item = Column<'a>> + 'a {
        let mut r = Reader::new("RowDescription", self.body);
        // Validated by `decode`, so `read_column` cannot fail here; `map_while` (rather than an
        // `unwrap`) keeps even a broken invariant from becoming a panic.
        (0..self.len).map_while(move |_| read_column(&mut r).ok())
    }
}

impl fmt::Debug for RowDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.columns()).finish()
    }
}

fn read_column<'a>(r: &mut Reader<'a>) -> Result<Column<'a>, ProtocolError> {
    let name = r.cstr("column name")?;
    let table_oid = r.u32("table oid")?;
    let column_id = r.i16("column number")?;
    let type_oid = r.u32("type oid")?;
    let type_size = r.i16("type size")?;
    let type_modifier = r.i32("type modifier")?;
    let code = r.i16("format code")?;
    let format = Format::from_code(code).ok_or(ProtocolError::Invalid {
        message: r.message,
        what: "a format code that is neither 0 nor 1",
        value: Some(code.into()),
    })?;
    Ok(Column {
        name,
        table_oid,
        column_id,
        type_oid,
        type_size,
        type_modifier,
        format,
    })
}

// ANCHOR: data_row
/// One DataRow, validated when decoded: every field's length fits inside the frame, and nothing is
/// left over. Fields are handed out as slices of the input (`None` for NULL), so reading a row
/// allocates nothing; this is the hot path of every query.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct DataRow<'a> {
    len: u16,
    /// The fields, after the count: each an `Int32` length (-1 for NULL) and that many bytes.
    body: &'a [u8],
}

/// The bytes in front of each DataRow field: its `Int32` length.
const FIELD_LENGTH_SIZE: usize = 4;

impl<'a> DataRow<'a> {
    /// How many fields (columns).
    pub fn len(&self) -> usize {
        usize::from(self.len)
    }

    /// True for a row of no columns.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The fields' bytes, `None` for NULL. Text format fields are the value's text (`42` is `b"42"`).
    pub fn fields(&self) -> impl Iterator<Item = Option<&'a [u8]>> + 'a {
        let body = self.body;
        self.ranges().map(move |range| range.and_then(|r| body.get(r)))
    }

    /// Each field's position within [`body`](Self::body), `None` for NULL: for a caller that keeps the
    /// row's bytes in one buffer and the positions beside it, instead of a `Vec` per field.
    pub fn ranges(&self) -> impl Iterator<Item = Option<Range<usize>>> + 'a {
        let body = self.body;
        let mut at = 0usize;
        (0..self.len).map_while(move |_| {
            let len_bytes = body.get(at..at + FIELD_LENGTH_SIZE)?;
            let len = i32::from_be_bytes(len_bytes.try_into().ok()?);
            at += FIELD_LENGTH_SIZE;
            if len < 0 {
                return Some(None);
            }
            let start = at;
            at += len as usize;
            Some(Some(start..at))
        })
    }

    /// The bytes after the field count, which [`ranges`](Self::ranges) index into.
    pub fn body(&self) -> &'a [u8] {
        self.body
    }
}

/// Check a DataRow body once, so that iterating it later cannot fail.
fn validate_data_row(body: &[u8]) -> Result<DataRow<'_>, ProtocolError> {
    let mut r = Reader::new("DataRow", body);
    let len = r.u16("field count")?;
    let fields = r.rest();
    let mut at = 0usize;
    for _ in 0..len {
        let len_bytes = fields.get(at..at + FIELD_LENGTH_SIZE).ok_or(ProtocolError::Truncated {
            message: "DataRow",
            what: "field length",
        })?;
        let field_len = i32::from_be_bytes([len_bytes[0], len_bytes[1], len_bytes[2], len_bytes[3]]);
        at += FIELD_LENGTH_SIZE;
        match field_len {
            -1 => {}
            n if n < -1 => {
                return Err(ProtocolError::Invalid {
                    message: "DataRow",
                    what: "a field length below -1",
                    value: Some(n.into()),
                })
            }
            n => {
                let n = n as usize;
                if fields.len() - at < n {
                    return Err(ProtocolError::Truncated {
                        message: "DataRow",
                        what: "field value",
                    });
                }
                at += n;
            }
        }
    }
    if at != fields.len() {
        return Err(ProtocolError::TrailingBytes {
            message: "DataRow",
            extra: fields.len() - at,
        });
    }
    Ok(DataRow { len, body: fields })
}
// ANCHOR_END: data_row

impl fmt::Debug for DataRow<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for field in self.fields() {
            match field {
                Some(bytes) => list.entry(&String::from_utf8_lossy(bytes)),
                None => list.entry(&"NULL"),
            };
        }
        list.finish()
    }
}

/// A ParameterDescription: the type oid of each `$n` of a described statement.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ParameterDescription<'a> {
    /// The oids, 4 bytes each; the length was checked against the count.
    oids: &'a [u8],
}

impl<'a> ParameterDescription<'a> {
    /// How many parameters.
    pub fn len(&self) -> usize {
        self.oids.len() / 4
    }

    /// True for a statement without parameters.
    pub fn is_empty(&self) -> bool {
        self.oids.is_empty()
    }

    /// The parameters' type oids, in order.
    pub fn types(&self) -> impl Iterator<Item = Oid> + 'a {
        self.oids
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
    }
}

impl fmt::Debug for ParameterDescription<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.types()).finish()
    }
}

/// The fields of an ErrorResponse or NoticeResponse.
/// <https://www.postgresql.org/docs/current/protocol-error-fields.html>
///
/// Its `Display` is one line as psql would print it, plus DETAIL and HINT lines when present:
/// `ERROR 42P01: relation "x" does not exist`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DbError {
    /// `S`: `ERROR`, `FATAL`, `PANIC`, `WARNING`, `NOTICE`, ... (possibly translated).
    pub severity: String,
    /// `V`: the severity, never translated (PostgreSQL 9.6+).
    pub severity_nonlocalized: Option<String>,
    /// `C`: the SQLSTATE code, e.g. `42P01` (see [`sqlstate`]).
    pub code: String,
    /// `M`: the primary message.
    pub message: String,
    /// `D`: more detail.
    pub detail: Option<String>,
    /// `H`: a suggestion.
    pub hint: Option<String>,
    /// `P`: 1-based character position in the query string where the error is.
    pub position: Option<u32>,
    /// `p`: position in an internally generated query.
    pub internal_position: Option<u32>,
    /// `q`: that internal query.
    pub internal_query: Option<String>,
    /// `W`: the context (call stack of PL functions, ...).
    pub where_: Option<String>,
    /// `s`: schema name.
    pub schema: Option<String>,
    /// `t`: table name.
    pub table: Option<String>,
    /// `c`: column name.
    pub column: Option<String>,
    /// `d`: data type name.
    pub datatype: Option<String>,
    /// `n`: constraint name.
    pub constraint: Option<String>,
    /// `F`: server source file.
    pub file: Option<String>,
    /// `L`: server source line.
    pub line: Option<u32>,
    /// `R`: server source routine.
    pub routine: Option<String>,
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.severity, self.code, self.message)?;
        if let Some(detail) = &self.detail {
            write!(f, "\nDETAIL: {detail}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\nHINT: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for DbError {}

/// Parse the `code byte, string` pairs of an ErrorResponse or NoticeResponse.
fn parse_db_error(message: &'static str, body: &[u8]) -> Result<DbError, ProtocolError> {
    let mut r = Reader::new(message, body);
    let mut e = DbError::default();
    let (mut has_severity, mut has_code, mut has_message) = (false, false, false);
    loop {
        let code = r.u8("field type")?;
        if code == 0 {
            break;
        }
        let value = r.cstr("field value")?;
        let number = |what| {
            value.parse::<u32>().map(Some).map_err(|_| ProtocolError::Invalid {
                message,
                what,
                value: None,
            })
        };
        match code {
            b'S' => {
                e.severity = value.to_owned();
                has_severity = true;
            }
            b'V' => e.severity_nonlocalized = Some(value.to_owned()),
            b'C' => {
                e.code = value.to_owned();
                has_code = true;
            }
            b'M' => {
                e.message = value.to_owned();
                has_message = true;
            }
            b'D' => e.detail = Some(value.to_owned()),
            b'H' => e.hint = Some(value.to_owned()),
            b'P' => e.position = number("a position (P) that is not a number")?,
            b'p' => e.internal_position = number("an internal position (p) that is not a number")?,
            b'q' => e.internal_query = Some(value.to_owned()),
            b'W' => e.where_ = Some(value.to_owned()),
            b's' => e.schema = Some(value.to_owned()),
            b't' => e.table = Some(value.to_owned()),
            b'c' => e.column = Some(value.to_owned()),
            b'd' => e.datatype = Some(value.to_owned()),
            b'n' => e.constraint = Some(value.to_owned()),
            b'F' => e.file = Some(value.to_owned()),
            b'L' => e.line = number("a line (L) that is not a number")?,
            b'R' => e.routine = Some(value.to_owned()),
            // The spec asks clients to ignore field types they do not know: more may be added.
            _ => {}
        }
    }
    r.finish()?;
    let missing = if !has_severity {
        Some("no severity (S) field")
    } else if !has_code {
        Some("no SQLSTATE (C) field")
    } else if !has_message {
        Some("no message (M) field")
    } else {
        None
    };
    match missing {
        Some(what) => Err(ProtocolError::Invalid {
            message,
            what,
            value: None,
        }),
        None => Ok(e),
    }
}

/// A cursor over one message's body that turns every short read into [`ProtocolError::Truncated`].
struct Reader<'a> {
    message: &'static str,
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(message: &'static str, buf: &'a [u8]) -> Self {
        Reader { message, buf }
    }

    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], ProtocolError> {
        let (head, rest) = self.buf.split_first_chunk::<N>().ok_or(ProtocolError::Truncated {
            message: self.message,
            what,
        })?;
        self.buf = rest;
        Ok(*head)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, ProtocolError> {
        Ok(self.take::<1>(what)?[0])
    }

    fn i16(&mut self, what: &'static str) -> Result<i16, ProtocolError> {
        Ok(i16::from_be_bytes(self.take(what)?))
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, ProtocolError> {
        Ok(u16::from_be_bytes(self.take(what)?))
    }

    fn i32(&mut self, what: &'static str) -> Result<i32, ProtocolError> {
        Ok(i32::from_be_bytes(self.take(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, ProtocolError> {
        Ok(u32::from_be_bytes(self.take(what)?))
    }

    /// A NUL-terminated UTF-8 string, without its NUL.
    fn cstr(&mut self, what: &'static str) -> Result<&'a str, ProtocolError> {
        let end = memchr(0, self.buf).ok_or(ProtocolError::Truncated {
            message: self.message,
            what,
        })?;
        let (s, rest) = self.buf.split_at(end);
        self.buf = rest.get(1..).unwrap_or_default();
        std::str::from_utf8(s).map_err(|_| ProtocolError::InvalidUtf8 {
            message: self.message,
            field: what,
        })
    }

    /// Everything that is left.
    fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.buf)
    }

    /// The message must end here.
    fn finish(&self) -> Result<(), ProtocolError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(ProtocolError::TrailingBytes {
                message: self.message,
                extra: self.buf.len(),
            })
        }
    }
}

/// Validate a list of `count` NUL-terminated UTF-8 strings, or (`count == None`) strings ended by an
/// empty one, as in AuthenticationSASL.
fn str_list<'a>(r: &mut Reader<'a>, count: Option<usize>, what: &'static str) -> Result<StrList<'a>, ProtocolError> {
    let start = r.buf;
    let mut n = 0usize;
    loop {
        if count == Some(n) {
            return Ok(StrList {
                body: &start[..start.len() - r.buf.len()],
            });
        }
        let before = r.buf.len();
        let s = r.cstr(what)?;
        if count.is_none() && s.is_empty() {
            // The empty terminator is not one of the strings.
            let used = start.len() - before;
            return Ok(StrList { body: &start[..used] });
        }
        n += 1;
    }
}

/// The backend message decoder: frames messages and checks every field.
///
/// It holds only its configuration; all state lives in the caller's buffer. (A decoder that buffered
/// internally would copy every byte once more, and hide from the reader where the bytes are.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoder {
    max_message_len: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
        }
    }
}

impl Decoder {
    /// A decoder with the default 1 GiB cap ([`DEFAULT_MAX_MESSAGE_LEN`]).
    pub fn new() -> Self {
        Decoder::default()
    }

    /// A decoder that refuses any message whose length field says more than `max` bytes (clamped to
    /// at least 4: every length counts itself).
    pub fn with_max_message_len(max: usize) -> Self {
        Decoder {
            max_message_len: max.max(LENGTH_SIZE),
        }
    }

    /// The cap on one message's length field.
    pub fn max_message_len(&self) -> usize {
        self.max_message_len
    }

    // ANCHOR: header
    /// Read the 5-byte header at the front of `buf`: `Ok(None)` until all five bytes are there, an
    /// `Err` for a header no server sends. This is the one place the framing rule lives: the
    /// connection asks it how much to wait for, and [`decode`](Self::decode) asks it too.
    ///
    /// Everything a header can be refused for is refused here, before a single body byte is awaited
    /// or any room is made for one: a length under 4 (it counts itself), a length over the cap (or
    /// over [`MAX_SHORT_MESSAGE_LEN`] for a tag that is never long), and a tag no backend message
    /// uses (garbage should fail now, not after a gigabyte of it).
    pub fn header(&self, buf: &[u8]) -> Result<Option<Header>, ProtocolError> {
        let Some((&tag, rest)) = buf.split_first() else {
            return Ok(None);
        };
        let Some(len_bytes) = rest.first_chunk::<LENGTH_SIZE>() else {
            return Ok(None);
        };
        let len = i32::from_be_bytes(*len_bytes);
        // A negative length fails this too: `try_from` refuses it.
        let len = match usize::try_from(len) {
            Ok(len) if len >= LENGTH_SIZE => len,
            _ => return Err(ProtocolError::LengthTooSmall { tag, len }),
        };
        let max = match may_be_long(tag) {
            true => self.max_message_len,
            false => self.max_message_len.min(MAX_SHORT_MESSAGE_LEN),
        };
        if len > max {
            return Err(ProtocolError::TooLong { tag, len, max });
        }
        if !is_known_tag(tag) {
            return Err(ProtocolError::UnknownTag(tag));
        }
        Ok(Some(Header { tag, len }))
    }
    // ANCHOR_END: header

    /// If `buf` starts with a whole message, return it and how many bytes it took (tag + length);
    /// `Ok(None)` if more bytes must be read first. An `Err` means the stream is broken.
    pub fn decode<'a>(&self, buf: &'a [u8]) -> Result<Option<(Message<'a>, usize)>, ProtocolError> {
        // ANCHOR: decode_frame
        let Some(header) = self.header(buf)? else {
            return Ok(None);
        };
        let Some(body) = buf.get(HEADER_SIZE..header.frame_len()) else {
            return Ok(None);
        };
        // ANCHOR_END: decode_frame
        Ok(Some((header.parse(body)?, header.frame_len())))
    }
}

/// A checked message header: the tag and the length field (which counts itself but not the tag).
///
/// Only [`Decoder::header`] makes one, so holding a `Header` means its length passed the decoder's
/// rules. The body is then exactly [`body_len`](Self::body_len) bytes, which the caller buffers in
/// whatever way suits it and hands to [`Header::parse`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    tag: u8,
    len: usize,
}

impl Header {
    /// The tag byte (`b'D'` for DataRow).
    pub fn tag(&self) -> u8 {
        self.tag
    }

    /// The length field: the body plus the four bytes of the field itself.
    pub fn length(&self) -> usize {
        self.len
    }

    /// The whole message on the wire, tag included: `1 + len`.
    pub fn frame_len(&self) -> usize {
        1 + self.len
    }

    /// The body's size: `len - 4`.
    pub fn body_len(&self) -> usize {
        self.len - LENGTH_SIZE
    }

    /// Decode the body that follows this header, checking every field.
    pub fn parse<'a>(&self, body: &'a [u8]) -> Result<Message<'a>, ProtocolError> {
        if body.len() != self.body_len() {
            return Err(ProtocolError::Invalid {
                message: message_name(self.tag),
                what: "a body whose size differs from its header's length",
                value: i64::try_from(body.len()).ok(),
            });
        }
        parse_body(self.tag, body)
    }
}

fn is_known_tag(tag: u8) -> bool {
    matches!(
        tag,
        AUTHENTICATION
            | BACKEND_KEY_DATA
            | PARAMETER_STATUS
            | READY_FOR_QUERY
            | ROW_DESCRIPTION
            | DATA_ROW
            | COMMAND_COMPLETE
            | EMPTY_QUERY_RESPONSE
            | ERROR_RESPONSE
            | NOTICE_RESPONSE
            | NOTIFICATION_RESPONSE
            | PARSE_COMPLETE
            | BIND_COMPLETE
            | CLOSE_COMPLETE
            | NO_DATA
            | PARAMETER_DESCRIPTION
            | PORTAL_SUSPENDED
            | NEGOTIATE_PROTOCOL_VERSION
            | COPY_IN_RESPONSE
            | COPY_OUT_RESPONSE
            | COPY_BOTH_RESPONSE
            | COPY_DATA
            | COPY_DONE
            | FUNCTION_CALL_RESPONSE
    )
}

/// The name of a backend message tag, for narration and errors: `'Z'` → `"ReadyForQuery"`.
pub fn message_name(tag: u8) -> &'static str {
    match tag {
        AUTHENTICATION => "Authentication",
        BACKEND_KEY_DATA => "BackendKeyData",
        PARAMETER_STATUS => "ParameterStatus",
        READY_FOR_QUERY => "ReadyForQuery",
        ROW_DESCRIPTION => "RowDescription",
        DATA_ROW => "DataRow",
        COMMAND_COMPLETE => "CommandComplete",
        EMPTY_QUERY_RESPONSE => "EmptyQueryResponse",
        ERROR_RESPONSE => "ErrorResponse",
        NOTICE_RESPONSE => "NoticeResponse",
        NOTIFICATION_RESPONSE => "NotificationResponse",
        PARSE_COMPLETE => "ParseComplete",
        BIND_COMPLETE => "BindComplete",
        CLOSE_COMPLETE => "CloseComplete",
        NO_DATA => "NoData",
        PARAMETER_DESCRIPTION => "ParameterDescription",
        PORTAL_SUSPENDED => "PortalSuspended",
        NEGOTIATE_PROTOCOL_VERSION => "NegotiateProtocolVersion",
        COPY_IN_RESPONSE => "CopyInResponse",
        COPY_OUT_RESPONSE => "CopyOutResponse",
        COPY_BOTH_RESPONSE => "CopyBothResponse",
        COPY_DATA => "CopyData",
        COPY_DONE => "CopyDone",
        FUNCTION_CALL_RESPONSE => "FunctionCallResponse",
        _ => "unknown",
    }
}

/// Decode one message's body; the frame is already checked.
fn parse_body(tag: u8, body: &[u8]) -> Result<Message<'_>, ProtocolError> {
    let name = message_name(tag);
    let mut r = Reader::new(name, body);
    let msg = match tag {
        AUTHENTICATION => Message::Authentication(parse_authentication(&mut r)?),
        BACKEND_KEY_DATA => {
            let process_id = r.i32("process id")?;
            // Protocol 3.2 (PostgreSQL 18) allows keys up to 256 bytes; we ask for 3.0, which has 4.
            let secret_key = r.i32("secret key")?;
            Message::BackendKeyData { process_id, secret_key }
        }
        PARAMETER_STATUS => Message::ParameterStatus {
            name: r.cstr("name")?,
            value: r.cstr("value")?,
        },
        READY_FOR_QUERY => Message::ReadyForQuery(match r.u8("status")? {
            STATUS_IDLE => TransactionStatus::Idle,
            STATUS_IN_TRANSACTION => TransactionStatus::InTransaction,
            STATUS_FAILED => TransactionStatus::Failed,
            other => return Err(ProtocolError::BadTransactionStatus(other)),
        }),
        ROW_DESCRIPTION => {
            let len = r.u16("column count")?;
            let columns = r.buf;
            for _ in 0..len {
                read_column(&mut r)?;
            }
            Message::RowDescription(RowDescription {
                len,
                body: &columns[..columns.len() - r.buf.len()],
            })
        }
        DATA_ROW => return Ok(Message::DataRow(validate_data_row(r.rest())?)),
        COMMAND_COMPLETE => Message::CommandComplete {
            tag: r.cstr("command tag")?,
        },
        EMPTY_QUERY_RESPONSE => Message::EmptyQueryResponse,
        ERROR_RESPONSE => return Ok(Message::ErrorResponse(parse_db_error(name, r.rest())?)),
        NOTICE_RESPONSE => return Ok(Message::NoticeResponse(parse_db_error(name, r.rest())?)),
        NOTIFICATION_RESPONSE => Message::NotificationResponse {
            process_id: r.i32("process id")?,
            channel: r.cstr("channel")?,
            payload: r.cstr("payload")?,
        },
        PARSE_COMPLETE => Message::ParseComplete,
        BIND_COMPLETE => Message::BindComplete,
        CLOSE_COMPLETE => Message::CloseComplete,
        NO_DATA => Message::NoData,
        PARAMETER_DESCRIPTION => {
            let len = usize::from(r.u16("parameter count")?);
            let oids = r.rest();
            // Each oid is 4 bytes; compare in the divided direction so nothing can overflow.
            if oids.len() / 4 < len {
                return Err(ProtocolError::Truncated {
                    message: name,
                    what: "parameter type oids",
                });
            }
            if oids.len() != len * 4 {
                return Err(ProtocolError::TrailingBytes {
                    message: name,
                    extra: oids.len() - len * 4,
                });
            }
            Message::ParameterDescription(ParameterDescription { oids })
        }
        PORTAL_SUSPENDED => Message::PortalSuspended,
        NEGOTIATE_PROTOCOL_VERSION => {
            let newest_minor = r.i32("newest minor version")?;
            let count = r.i32("option count")?;
            let count = usize::try_from(count).map_err(|_| ProtocolError::Invalid {
                message: name,
                what: "a negative option count",
                value: Some(count.into()),
            })?;
            let unrecognized = str_list(&mut r, Some(count), "option name")?;
            Message::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            }
        }
        COPY_IN_RESPONSE => Message::CopyInResponse(copy_response(&mut r, name)?),
        COPY_OUT_RESPONSE => Message::CopyOutResponse(copy_response(&mut r, name)?),
        COPY_DATA => Message::CopyData(r.rest()),
        COPY_DONE => Message::CopyDone,
        COPY_BOTH_RESPONSE | FUNCTION_CALL_RESPONSE => {
            return Ok(Message::Unsupported {
                tag,
                name,
                body: r.rest(),
            })
        }
        _ => return Err(ProtocolError::UnknownTag(tag)),
    };
    r.finish()?;
    Ok(msg)
}

/// `Int8` overall format (0 text, 1 binary), `Int16` column count, then an
/// `Int16` format per column, each 0 or 1.
fn copy_response(r: &mut Reader<'_>, name: &'static str) -> Result<CopyResponse, ProtocolError> {
    let binary = match r.u8("overall format")? {
        0 => false,
        1 => true,
        other => {
            return Err(ProtocolError::Invalid {
                message: name,
                what: "an overall format other than 0 (text) or 1 (binary)",
                value: Some(other.into()),
            })
        }
    };
    let columns = r.u16("column count")?;
    for _ in 0..columns {
        let format = r.i16("column format")?;
        if !(0..=1).contains(&format) {
            return Err(ProtocolError::Invalid {
                message: name,
                what: "a column format other than 0 or 1",
                value: Some(format.into()),
            });
        }
    }
    Ok(CopyResponse { binary, columns })
}

fn parse_authentication<'a>(r: &mut Reader<'a>) -> Result<Authentication<'a>, ProtocolError> {
    let code = r.i32("authentication code")?;
    Ok(match code {
        AUTH_OK => Authentication::Ok,
        AUTH_KERBEROS_V5 => Authentication::KerberosV5,
        AUTH_CLEARTEXT_PASSWORD => Authentication::CleartextPassword,
        AUTH_MD5_PASSWORD => Authentication::Md5Password { salt: r.take("salt")? },
        AUTH_GSS => Authentication::Gss,
        AUTH_GSS_CONTINUE => Authentication::GssContinue(r.rest()),
        AUTH_SSPI => Authentication::Sspi,
        AUTH_SASL => Authentication::Sasl(str_list(r, None, "SASL mechanism")?),
        AUTH_SASL_CONTINUE => Authentication::SaslContinue(r.rest()),
        AUTH_SASL_FINAL => Authentication::SaslFinal(r.rest()),
        other => {
            return Err(ProtocolError::Invalid {
                message: "Authentication",
                what: "an unknown authentication code",
                value: Some(other.into()),
            })
        }
    })
}

/// The narrator's view of a message: `ReadyForQuery I`, `CommandComplete "SELECT 1"`,
/// `DataRow ["42", NULL]`. Secrets (the cancel key, SASL payloads) are not shown.
impl fmt::Display for Message<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Authentication(a) => match a {
                Authentication::Ok => f.write_str("AuthenticationOk"),
                Authentication::KerberosV5 => f.write_str("AuthenticationKerberosV5"),
                Authentication::CleartextPassword => f.write_str("AuthenticationCleartextPassword"),
                Authentication::Md5Password { .. } => f.write_str("AuthenticationMD5Password"),
                Authentication::Gss => f.write_str("AuthenticationGSS"),
                Authentication::GssContinue(d) => write!(f, "AuthenticationGSSContinue [{} bytes]", d.len()),
                Authentication::Sspi => f.write_str("AuthenticationSSPI"),
                Authentication::Sasl(m) => write!(f, "AuthenticationSASL {m:?}"),
                Authentication::SaslContinue(d) => write!(f, "AuthenticationSASLContinue [{} bytes]", d.len()),
                Authentication::SaslFinal(d) => write!(f, "AuthenticationSASLFinal [{} bytes]", d.len()),
            },
            Message::BackendKeyData { process_id, .. } => write!(f, "BackendKeyData pid={process_id}"),
            Message::ParameterStatus { name, value } => write!(f, "ParameterStatus {name}={value}"),
            Message::ReadyForQuery(s) => write!(f, "ReadyForQuery {}", s.byte() as char),
            Message::RowDescription(d) => {
                f.write_str("RowDescription [")?;
                for (i, c) in d.columns().enumerate() {
                    let sep = if i > 0 { ", " } else { "" };
                    write!(f, "{sep}{} oid={}", c.name, c.type_oid)?;
                }
                f.write_str("]")
            }
            Message::DataRow(row) => write!(f, "DataRow {row:?}"),
            Message::CommandComplete { tag } => write!(f, "CommandComplete {tag:?}"),
            Message::EmptyQueryResponse => f.write_str("EmptyQueryResponse"),
            Message::ErrorResponse(e) => write!(f, "ErrorResponse {} {}: {}", e.severity, e.code, e.message),
            Message::NoticeResponse(e) => write!(f, "NoticeResponse {} {}: {}", e.severity, e.code, e.message),
            Message::NotificationResponse {
                process_id,
                channel,
                payload,
            } => {
                write!(f, "NotificationResponse pid={process_id} {channel:?} {payload:?}")
            }
            Message::ParseComplete => f.write_str("ParseComplete"),
            Message::BindComplete => f.write_str("BindComplete"),
            Message::CloseComplete => f.write_str("CloseComplete"),
            Message::NoData => f.write_str("NoData"),
            Message::ParameterDescription(p) => write!(f, "ParameterDescription {p:?}"),
            Message::PortalSuspended => f.write_str("PortalSuspended"),
            Message::NegotiateProtocolVersion {
                newest_minor,
                unrecognized,
            } => {
                write!(
                    f,
                    "NegotiateProtocolVersion 3.{newest_minor} unrecognized={unrecognized:?}"
                )
            }
            Message::CopyInResponse(c) => write!(f, "CopyInResponse {} columns{}", c.columns, binary(c)),
            Message::CopyOutResponse(c) => write!(f, "CopyOutResponse {} columns{}", c.columns, binary(c)),
            Message::CopyData(data) => write!(f, "CopyData [{} bytes]", data.len()),
            Message::CopyDone => f.write_str("CopyDone"),
            Message::Unsupported { name, body, .. } => write!(f, "{name} [{} bytes, unsupported]", body.len()),
        }
    }
}

fn binary(c: &CopyResponse) -> &'static str {
    if c.binary {
        ", binary"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_responses_are_checked_and_copy_data_is_passed_through() {
        let d = Decoder::new();
        let copy_in = frame(COPY_IN_RESPONSE, &[0, 0, 2, 0, 0, 0, 0]);
        let msg = d.decode(&copy_in).unwrap().unwrap().0;
        assert_eq!(
            msg,
            Message::CopyInResponse(CopyResponse {
                binary: false,
                columns: 2
            })
        );
        let bad_format = frame(COPY_OUT_RESPONSE, &[7, 0, 0]);
        assert!(d.decode(&bad_format).is_err());
        let short = frame(COPY_OUT_RESPONSE, &[0, 0, 2, 0, 0]);
        assert!(d.decode(&short).is_err(), "two columns announced, one format given");
        let data = frame(COPY_DATA, b"1\tAlice\n");
        assert_eq!(d.decode(&data).unwrap().unwrap().0, Message::CopyData(b"1\tAlice\n"));
    }

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn partial_message_is_need_more_bytes_not_an_error() {
        let whole = frame(READY_FOR_QUERY, b"I");
        let d = Decoder::new();
        for cut in 0..whole.len() {
            assert_eq!(d.decode(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(
            d.decode(&whole).unwrap(),
            Some((Message::ReadyForQuery(TransactionStatus::Idle), whole.len()))
        );
    }

    #[test]
    fn header_is_known_from_five_bytes_and_refused_before_the_body() {
        let whole = frame(COMMAND_COMPLETE, b"SELECT 1\0");
        let d = Decoder::new();
        for cut in 0..HEADER_SIZE {
            assert_eq!(d.header(&whole[..cut]).unwrap(), None, "cut at {cut}");
        }
        let header = d.header(&whole[..HEADER_SIZE]).unwrap().unwrap();
        assert_eq!(
            (header.tag(), header.length(), header.frame_len()),
            (b'C', 13, whole.len())
        );
        assert_eq!(
            header.parse(&whole[HEADER_SIZE..]).unwrap(),
            Message::CommandComplete { tag: "SELECT 1" }
        );
        // A header promising more than the cap is refused with no body at all.
        let small = Decoder::with_max_message_len(8);
        assert!(matches!(
            small.header(&whole[..HEADER_SIZE]).unwrap_err(),
            ProtocolError::TooLong { len: 13, max: 8, .. }
        ));
        // A ReadyForQuery of 40,000 bytes is no ReadyForQuery; a DataRow of that size is a row.
        assert!(matches!(
            d.header(&[b'Z', 0, 0, 0x9c, 0x40]).unwrap_err(),
            ProtocolError::TooLong {
                max: MAX_SHORT_MESSAGE_LEN,
                ..
            }
        ));
        assert!(d.header(&[b'D', 0, 0, 0x9c, 0x40]).unwrap().is_some());
        assert_eq!(
            d.header(b"D\xff\xff\xff\xff").unwrap_err(),
            ProtocolError::LengthTooSmall { tag: b'D', len: -1 }
        );
        // A body of the wrong size for its header is an error, not a panic.
        assert!(header.parse(b"SELECT 1").is_err());
    }

    #[test]
    fn data_row_fields_borrow_from_the_input() {
        let mut body = 3u16.to_be_bytes().to_vec();
        body.extend_from_slice(&2i32.to_be_bytes());
        body.extend_from_slice(b"42");
        body.extend_from_slice(&(-1i32).to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        let buf = frame(DATA_ROW, &body);
        let (msg, n) = Decoder::new().decode(&buf).unwrap().unwrap();
        assert_eq!(n, buf.len());
        let Message::DataRow(row) = msg else { panic!("{msg:?}") };
        let fields: Vec<_> = row.fields().collect();
        assert_eq!(fields, vec![Some(&b"42"[..]), None, Some(&b""[..])]);
        assert_eq!(fields[0].unwrap().as_ptr(), buf[11..].as_ptr());
    }

    #[test]
    fn error_response_displays_severity_code_message() {
        let buf = frame(
            ERROR_RESPONSE,
            b"SERROR\0VERROR\0C42P01\0Mrelation \"x\" does not exist\0P15\0\0",
        );
        let (msg, _) = Decoder::new().decode(&buf).unwrap().unwrap();
        let Message::ErrorResponse(e) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(e.to_string(), "ERROR 42P01: relation \"x\" does not exist");
        assert_eq!(e.position, Some(15));
    }

    #[test]
    fn sasl_mechanisms_are_listed_without_the_terminator() {
        let buf = frame(AUTHENTICATION, b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
        let (msg, _) = Decoder::new().decode(&buf).unwrap().unwrap();
        let Message::Authentication(Authentication::Sasl(list)) = msg else {
            panic!("{msg:?}")
        };
        assert_eq!(list.iter().collect::<Vec<_>>(), ["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]);
    }

    #[test]
    fn hostile_frames_are_errors() {
        let d = Decoder::new();
        assert_eq!(
            d.decode(b"Z\0\0\0\x03").unwrap_err(),
            ProtocolError::LengthTooSmall { tag: b'Z', len: 3 }
        );
        assert!(matches!(
            d.decode(b"HTTP/1.1 400").unwrap_err(),
            ProtocolError::TooLong { .. }
        ));
        assert_eq!(d.decode(b"?\0\0\0\x04").unwrap_err(), ProtocolError::UnknownTag(b'?'));
        assert_eq!(
            d.decode(&frame(READY_FOR_QUERY, b"X")).unwrap_err(),
            ProtocolError::BadTransactionStatus(b'X')
        );
        assert!(matches!(
            d.decode(&frame(PARSE_COMPLETE, b"x")).unwrap_err(),
            ProtocolError::TrailingBytes { .. }
        ));
        assert!(matches!(
            d.decode(&frame(PARAMETER_STATUS, b"a\0\xff\0")).unwrap_err(),
            ProtocolError::InvalidUtf8 { .. }
        ));
        let mut huge_count = 1000u16.to_be_bytes().to_vec();
        huge_count.extend_from_slice(&1i32.to_be_bytes());
        assert!(matches!(
            d.decode(&frame(DATA_ROW, &huge_count)).unwrap_err(),
            ProtocolError::Truncated { .. }
        ));
    }
}
