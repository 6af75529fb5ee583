//! Rust values to and from PostgreSQL's **text format**.
//!
//! Every parameter we send and every column we receive travels as text
//! (format code 0): `42`, `t`, `3.5`, `\x00ff` for a `bytea`. We chose text
//! over binary (format code 1) because:
//!
//! - it works for *every* type, so a query tool can print `now()` or a
//!   `numeric` without a decoder per type (binary `numeric` is base-10000
//!   digit groups; binary `timestamp` is microseconds since 2000);
//! - the server infers a parameter's type from the query and parses our
//!   text for it, so a one-shot query needs no Describe round trip first to
//!   learn whether `$1` is `int4` or `int8` (binary must match exactly);
//! - it is what you read in the narrator and in `tcpdump`.
//!
//! The price: integers are parsed from ASCII (a few nanoseconds) and a
//! `bytea` doubles in size as hex. A driver chasing the last percent
//! (tokio-postgres) uses binary and pays with a Describe per statement.
//!
//! # Which column reads as which Rust type
//!
//! [`FromSql`] checks the column's type oid from RowDescription before it
//! reads the text, so a schema change (`id` from `text` to `int4`) is an
//! error, not a silently different value:
//!
//! | Rust type | column types accepted |
//! |---|---|
//! | `i16`, `i32`, `i64` | `int2`, `int4`, `int8` (a value out of the Rust type's range is an error) |
//! | `f32`, `f64` | `float4`, `float8` |
//! | `bool` | `bool` |
//! | `Vec<u8>` | `bytea` |
//! | `String`, `&str` | any type *without* a Rust type above, in its text form: `text`, `varchar`, `name`, and also `numeric`, `timestamptz`, `uuid`, `json`... |
//!
//! The last row is the one judgement call: the text format makes every
//! value a string, and for types connlab has no Rust type for, the string
//! is the only way to read them. A column that *has* a Rust type must be
//! read as it, so `get::<String>` on an `int4` is refused with a message
//! naming the type to use. [`Value`] reads anything.
//!
//! Spec: the PostgreSQL manual, "Formats and Format Codes" (§55.1.3 in the
//! PostgreSQL 15 and 16 manuals: part of the protocol's Overview, not of its
//! Message Flow; chapter numbers move between versions, the page
//! `protocol-overview.html#PROTOCOL-FORMAT-CODES` does not), "Binary Data
//! Types" (bytea hex format) and "Boolean Type" in the data types chapter.

use std::fmt;
use std::str;

use super::Error;
use crate::pg::protocol::frontend::IsNull;
use crate::pg::protocol::Oid;

/// Type OIDs from `pg_type` (stable across versions: they are in the
/// server's `pg_type.dat`).
pub mod oid {
    use crate::pg::protocol::Oid;
    /// `bool`
    pub const BOOL: Oid = 16;
    /// `bytea`
    pub const BYTEA: Oid = 17;
    /// `int8` (`bigint`)
    pub const INT8: Oid = 20;
    /// `int2` (`smallint`)
    pub const INT2: Oid = 21;
    /// `int4` (`integer`)
    pub const INT4: Oid = 23;
    /// `text`
    pub const TEXT: Oid = 25;
    /// `float4` (`real`)
    pub const FLOAT4: Oid = 700;
    /// `float8` (`double precision`)
    pub const FLOAT8: Oid = 701;
    /// `varchar`
    pub const VARCHAR: Oid = 1043;
    /// "Let the server infer it", in Parse's parameter type list.
    pub const UNSPECIFIED: Oid = 0;
}

/// A Rust value that can be a query parameter.
pub trait ToSql {
    /// The type to announce in Parse, or [`oid::UNSPECIFIED`] to let the
    /// server infer it from the query (what we do for strings, so that
    /// `WHERE id = $1` with `"42"` works as it does in `psql`).
    fn type_oid(&self) -> Oid;

    /// Append the value's text form to `out`, or say it is NULL.
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull;
}

macro_rules! to_sql_display {
    ($($t:ty => $oid:expr),*) => {$(
        impl ToSql for $t {
            fn type_oid(&self) -> Oid {
                $oid
            }
            fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
                use std::io::Write;
                // Writing to a Vec cannot fail.
                let _ = write!(out, "{self}");
                IsNull::No
            }
        }
    )*};
}
to_sql_display!(i16 => oid::INT2, i32 => oid::INT4, i64 => oid::INT8);

impl ToSql for bool {
    fn type_oid(&self) -> Oid {
        oid::BOOL
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        out.push(if *self { b't' } else { b'f' });
        IsNull::No
    }
}

macro_rules! to_sql_float {
    ($($t:ty => $oid:expr),*) => {$(
        impl ToSql for $t {
            fn type_oid(&self) -> Oid {
                $oid
            }
            /// Rust prints `inf` and `NaN`; PostgreSQL reads `Infinity` and
            /// `NaN`. Finite values print in Rust's shortest round-trip form,
            /// which the server parses back exactly.
            fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
                use std::io::Write;
                if self.is_infinite() {
                    out.extend_from_slice(if *self > 0.0 { b"Infinity" } else { b"-Infinity" });
                } else {
                    // Writing to a Vec cannot fail.
                    let _ = write!(out, "{self}");
                }
                IsNull::No
            }
        }
    )*};
}
to_sql_float!(f32 => oid::FLOAT4, f64 => oid::FLOAT8);

impl ToSql for str {
    fn type_oid(&self) -> Oid {
        oid::UNSPECIFIED
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        out.extend_from_slice(self.as_bytes());
        IsNull::No
    }
}

impl ToSql for String {
    fn type_oid(&self) -> Oid {
        oid::UNSPECIFIED
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        self.as_str().to_text(out)
    }
}

/// `bytea` in hex format: `\x` then two hex digits per byte.
impl ToSql for [u8] {
    fn type_oid(&self) -> Oid {
        oid::BYTEA
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        out.reserve(2 + 2 * self.len());
        out.extend_from_slice(b"\\x");
        for &b in self {
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0x0f)]);
        }
        IsNull::No
    }
}

impl ToSql for Vec<u8> {
    fn type_oid(&self) -> Oid {
        oid::BYTEA
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        self.as_slice().to_text(out)
    }
}

impl<T: ToSql + ?Sized> ToSql for &T {
    fn type_oid(&self) -> Oid {
        (**self).type_oid()
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        (**self).to_text(out)
    }
}

/// `None` is SQL NULL, sent untyped: the server takes the type from the
/// query (`WHERE id = $1` makes it `int4`; a bare `SELECT $1` makes it
/// `text`, so write `$1::int4` there).
impl<T: ToSql> ToSql for Option<T> {
    fn type_oid(&self) -> Oid {
        match self {
            Some(v) => v.type_oid(),
            None => oid::UNSPECIFIED,
        }
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        match self {
            Some(v) => v.to_text(out),
            None => IsNull::Yes,
        }
    }
}

/// A Rust value that can be read from a result column's text.
pub trait FromSql<'a>: Sized {
    /// Convert one column. `raw` is `None` for NULL; `type_oid` is the
    /// column's type from RowDescription.
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String>;
}

/// The column types with a Rust type of their own, and the Rust types.
const TYPED: [(Oid, &str, &str); 8] = [
    (oid::BOOL, "bool", "bool"),
    (oid::INT2, "int2", "i16, i32 or i64"),
    (oid::INT4, "int4", "i16, i32 or i64"),
    (oid::INT8, "int8", "i16, i32 or i64"),
    (oid::FLOAT4, "float4", "f32 or f64"),
    (oid::FLOAT8, "float8", "f32 or f64"),
    (oid::BYTEA, "bytea", "Vec<u8>"),
    (oid::TEXT, "text", "String or &str"),
];

/// Refuse a column whose type is not one of `accepted`, naming the Rust
/// type it does read as.
fn expect_type(type_oid: Oid, accepted: &[Oid], rust: &str) -> Result<(), String> {
    if accepted.contains(&type_oid) {
        return Ok(());
    }
    Err(match TYPED.iter().find(|(o, ..)| *o == type_oid) {
        Some((_, name, reads_as)) => format!("has type {name}, which reads as {reads_as}, not {rust}"),
        None => format!("has type oid {type_oid}, which reads as String or &str, not {rust}"),
    })
}

/// `String` and `&str` read every type that has no Rust type of its own.
fn expect_text(type_oid: Oid) -> Result<(), String> {
    match TYPED.iter().find(|(o, ..)| *o == type_oid && *o != oid::TEXT) {
        Some((_, name, reads_as)) => Err(format!("has type {name}, which reads as {reads_as}, not as a string")),
        None => Ok(()),
    }
}

const INTEGERS: [Oid; 3] = [oid::INT2, oid::INT4, oid::INT8];
const FLOATS: [Oid; 2] = [oid::FLOAT4, oid::FLOAT8];

fn not_null(raw: Option<&[u8]>) -> Result<&[u8], String> {
    raw.ok_or_else(|| "is NULL; read it as an Option".to_string())
}

fn utf8(raw: &[u8]) -> Result<&str, String> {
    str::from_utf8(raw).map_err(|_| "is not UTF-8".to_string())
}

macro_rules! from_sql_parse {
    ($($t:ty),*) => {$(
        impl<'a> FromSql<'a> for $t {
            fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
                expect_type(type_oid, &INTEGERS, stringify!($t))?;
                let text = utf8(not_null(raw)?)?;
                text.parse().map_err(|e| format!("{text:?} is not a {}: {e}", stringify!($t)))
            }
        }
    )*};
}
from_sql_parse!(i16, i32, i64);

macro_rules! from_sql_float {
    ($($t:ty),*) => {$(
        impl<'a> FromSql<'a> for $t {
            fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
                expect_type(type_oid, &FLOATS, stringify!($t))?;
                let text = utf8(not_null(raw)?)?;
                match text {
                    "Infinity" => Ok(<$t>::INFINITY),
                    "-Infinity" => Ok(<$t>::NEG_INFINITY),
                    _ => text.parse().map_err(|e| format!("{text:?} is not a {}: {e}", stringify!($t))),
                }
            }
        }
    )*};
}
from_sql_float!(f32, f64);

impl<'a> FromSql<'a> for bool {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::BOOL], "bool")?;
        match not_null(raw)? {
            b"t" => Ok(true),
            b"f" => Ok(false),
            other => Err(format!("{:?} is not a bool (t or f)", String::from_utf8_lossy(other))),
        }
    }
}

impl<'a> FromSql<'a> for &'a str {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_text(type_oid)?;
        utf8(not_null(raw)?)
    }
}

impl<'a> FromSql<'a> for String {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        <&str>::from_sql(type_oid, raw).map(str::to_owned)
    }
}

/// A `bytea` column, from its hex text (`\x00ff`).
impl<'a> FromSql<'a> for Vec<u8> {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::BYTEA], "Vec<u8>")?;
        decode_bytea_hex(not_null(raw)?)
    }
}

impl<'a, T: FromSql<'a>> FromSql<'a> for Option<T> {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        match raw {
            None => Ok(None),
            Some(_) => T::from_sql(type_oid, raw).map(Some),
        }
    }
}

/// `\x` then hex pairs. (The older "escape" format only appears when the
/// server runs with `bytea_output = 'escape'`; we refuse it by name.)
fn decode_bytea_hex(raw: &[u8]) -> Result<Vec<u8>, String> {
    let hex = raw
        .strip_prefix(b"\\x")
        .ok_or_else(|| "is a bytea not in hex format (bytea_output = 'escape'?)".to_string())?;
    if hex.len() % 2 != 0 {
        return Err("is a bytea with an odd number of hex digits".to_string());
    }
    let digit = |c: u8| {
        (c as char)
            .to_digit(16)
            .ok_or_else(|| format!("has {:?}, not a hex digit", c as char))
    };
    hex.chunks_exact(2)
        .map(|pair| match pair {
            [hi, lo] => Ok((digit(*hi)? * 16 + digit(*lo)?) as u8),
            _ => Err("is a bytea with an odd number of hex digits".to_string()),
        })
        .collect()
}

/// A column value decoded by its type, for code that does not know the
/// types in advance (a query tool). Types outside the list stay text.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// SQL NULL.
    Null,
    /// `bool`
    Bool(bool),
    /// `int2`, `int4` or `int8`
    Int(i64),
    /// `float4` or `float8`
    Float(f64),
    /// `text`, `varchar`, or any other type in its text form (`numeric`,
    /// `timestamptz`, ...).
    Text(String),
    /// `bytea`
    Bytes(Vec<u8>),
}

impl Value {
    /// Decode a column by its type oid.
    pub fn decode(type_oid: Oid, raw: Option<&[u8]>) -> Result<Value, Error> {
        let value = match (type_oid, raw) {
            (_, None) => Ok(Value::Null),
            (oid::BOOL, _) => bool::from_sql(type_oid, raw).map(Value::Bool),
            (oid::INT2 | oid::INT4 | oid::INT8, _) => i64::from_sql(type_oid, raw).map(Value::Int),
            (oid::FLOAT4 | oid::FLOAT8, _) => f64::from_sql(type_oid, raw).map(Value::Float),
            (oid::BYTEA, _) => Vec::<u8>::from_sql(type_oid, raw).map(Value::Bytes),
            _ => String::from_sql(type_oid, raw).map(Value::Text),
        };
        value.map_err(|why| Error::conversion("value", why))
    }
}

impl fmt::Display for Value {
    /// As `psql` shows it: NULL as empty, bool as `t`/`f`, bytea as `\x…`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => Ok(()),
            Value::Bool(b) => f.write_str(if *b { "t" } else { "f" }),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => f.write_str(s),
            Value::Bytes(bytes) => {
                f.write_str("\\x")?;
                bytes.iter().try_for_each(|b| write!(f, "{b:02x}"))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn text(v: &dyn ToSql) -> Option<String> {
        let mut out = Vec::new();
        match v.to_text(&mut out) {
            IsNull::Yes => None,
            IsNull::No => Some(String::from_utf8(out).unwrap()),
        }
    }

    #[test]
    fn parameters_use_postgres_text_spellings() {
        assert_eq!(text(&true).as_deref(), Some("t"));
        assert_eq!(text(&-7i16).as_deref(), Some("-7"));
        assert_eq!(text(&f64::NEG_INFINITY).as_deref(), Some("-Infinity"));
        assert_eq!(text(&f32::NAN).as_deref(), Some("NaN"));
        assert_eq!(text(&vec![0u8, 0xff]).as_deref(), Some("\\x00ff"));
        assert_eq!(text(&None::<i32>), None);
    }

    #[test]
    fn null_needs_an_option() {
        assert!(i32::from_sql(oid::INT4, None).is_err());
        assert_eq!(Option::<i32>::from_sql(oid::INT4, None), Ok(None));
    }

    #[test]
    fn bad_column_text_is_an_error_not_a_panic() {
        assert!(i32::from_sql(oid::INT4, Some(b"4x")).is_err());
        assert!(bool::from_sql(oid::BOOL, Some(b"yes")).is_err());
        assert!(Vec::<u8>::from_sql(oid::BYTEA, Some(b"\\x0")).is_err());
        assert!(Vec::<u8>::from_sql(oid::BYTEA, Some(b"\\xzz")).is_err());
        assert!(String::from_sql(oid::TEXT, Some(&[0xff])).is_err());
    }

    #[test]
    fn a_column_is_read_only_as_a_rust_type_its_type_allows() {
        // The defect: an int4 column read as a String without a word.
        let err = String::from_sql(oid::INT4, Some(b"42")).unwrap_err();
        assert!(err.contains("int4") && err.contains("i32"), "{err}");
        assert!(<&str>::from_sql(oid::BOOL, Some(b"t")).is_err());
        assert!(i32::from_sql(oid::TEXT, Some(b"42")).is_err());
        assert!(f64::from_sql(oid::INT8, Some(b"1")).is_err());
        assert!(bool::from_sql(oid::INT4, Some(b"1")).is_err());
        assert!(Vec::<u8>::from_sql(oid::TEXT, Some(b"\\x00")).is_err());
        // Integers read across widths; the value must fit.
        assert_eq!(i64::from_sql(oid::INT2, Some(b"7")), Ok(7));
        assert!(i16::from_sql(oid::INT8, Some(b"40000")).is_err());
        // Strings read text and every type without a Rust type (numeric = 1700, uuid = 2950).
        assert_eq!(String::from_sql(oid::VARCHAR, Some(b"a")).as_deref(), Ok("a"));
        assert_eq!(<&str>::from_sql(1700, Some(b"3.14")), Ok("3.14"));
        assert_eq!(<&str>::from_sql(2950, Some(b"a0ee-")), Ok("a0ee-"));
        // NULL reads as None whatever the column's type: there is no value to misread.
        assert_eq!(Option::<i32>::from_sql(oid::TEXT, None), Ok(None));
    }

    proptest! {
        #[test]
        fn bytea_hex_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let mut out = Vec::new();
            bytes.to_text(&mut out);
            prop_assert_eq!(Vec::<u8>::from_sql(oid::BYTEA, Some(&out)).unwrap(), bytes);
        }

        #[test]
        fn floats_round_trip_exactly(x in any::<f64>()) {
            let mut out = Vec::new();
            x.to_text(&mut out);
            let back = f64::from_sql(oid::FLOAT8, Some(&out)).unwrap();
            prop_assert!(back == x || (x.is_nan() && back.is_nan()));
        }

        #[test]
        fn any_column_bytes_decode_or_fail_cleanly(oid in prop_oneof![Just(16u32), Just(17), Just(20), Just(25), Just(701)],
                                                   raw in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Value::decode(oid, Some(&raw));
        }
    }
}
