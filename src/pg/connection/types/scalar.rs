//! `numeric`, `uuid` and `json`/`jsonb`: three types whose text form is
//! already the value, given a Rust type each so a column's type is checked
//! and a parameter's type is announced.
//!
//! - [`Numeric`] keeps the server's decimal digits as text. An exact
//!   decimal needs arbitrary precision (a `numeric` may have 131072 digits
//!   before the point), so arithmetic belongs to a decimal crate
//!   (`rust_decimal`, `bigdecimal`) the application chooses; connlab only
//!   checks the syntax and carries the digits unchanged. [`Numeric::to_f64`]
//!   is there for the common "just show me a number", and says it rounds.
//! - [`Uuid`] is the 16 bytes, in 40 lines; the `uuid` crate would add
//!   generation and versions, which a client that only carries ids does not
//!   need.
//! - `json` and `jsonb` read as `String` (their text is the document), and
//!   as `serde_json::Value` with the `serde_json` cargo feature. A parameter
//!   is sent untyped, so the server reads it as the column's type.
//!
//! Spec: the PostgreSQL manual, "Numeric Types", "UUID Type" and "JSON
//! Types" in the data types chapter.

use std::fmt;
use std::str::FromStr;

use super::{expect_type, not_null, oid, utf8, write_display, FromSql, IsNull, Oid, ToSql};

/// A `numeric` value, as its decimal text: `-12.50`, `1e-7` (as sent),
/// `NaN`, `Infinity`, `-Infinity` (PostgreSQL 14 and later). See the module
/// docs for why it is not a number type.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Numeric(String);

impl Numeric {
    /// Check that `text` is a decimal number, `NaN` or `±Infinity`, as the
    /// server's `numeric` input reads it (the words in any case).
    pub fn new(text: impl Into<String>) -> Result<Numeric, String> {
        let text = text.into();
        if is_numeric(&text) {
            Ok(Numeric(text))
        } else {
            Err(format!(
                "{text:?} is not a numeric (digits, one '.', an optional exponent)"
            ))
        }
    }

    /// The decimal text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The nearest `f64`: exact for up to 15 significant digits, rounded
    /// beyond (a `numeric` exists because money must not be).
    pub fn to_f64(&self) -> f64 {
        // Rust's float syntax covers what `is_numeric` accepts, the special
        // words included, so the fallback is never taken.
        self.0.parse().unwrap_or(f64::NAN)
    }
}

/// `[+-] digits [. digits] [e [+-] digits]` with at least one digit before
/// the exponent, or one of the special words.
fn is_numeric(text: &str) -> bool {
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    if unsigned.eq_ignore_ascii_case("infinity") || text.eq_ignore_ascii_case("nan") {
        return true;
    }
    let (mantissa, exponent) = match unsigned.find(['e', 'E']) {
        Some(at) => (&unsigned[..at], Some(&unsigned[at + 1..])),
        None => (unsigned, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let mantissa_ok = digits(whole) && digits(fraction) && !(whole.is_empty() && fraction.is_empty());
    let exponent_ok = exponent.map_or(true, |e| {
        let e = e.strip_prefix(['+', '-']).unwrap_or(e);
        !e.is_empty() && digits(e)
    });
    mantissa_ok && exponent_ok
}

impl fmt::Display for Numeric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Numeric {
    type Err = String;

    fn from_str(text: &str) -> Result<Numeric, String> {
        Numeric::new(text)
    }
}

macro_rules! numeric_from_int {
    ($($t:ty),*) => {$(
        impl From<$t> for Numeric {
            fn from(n: $t) -> Numeric {
                Numeric(n.to_string())
            }
        }
    )*};
}
numeric_from_int!(i16, i32, i64, u32, u64);

impl ToSql for Numeric {
    fn type_oid(&self) -> Oid {
        oid::NUMERIC
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        out.extend_from_slice(self.0.as_bytes());
        IsNull::No
    }
}

impl<'a> FromSql<'a> for Numeric {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::NUMERIC], "Numeric")?;
        Numeric::new(utf8(not_null(raw)?)?)
    }
}

/// A `uuid`: 16 bytes, shown as `a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Uuid(pub [u8; 16]);

impl Uuid {
    /// The 16 bytes, most significant first.
    pub fn as_bytes(&self) -> &[u8; 16] {
        &self.0
    }
}

impl fmt::Display for Uuid {
    /// Lower-case hex in 8-4-4-4-12 groups, as the server prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, b) in self.0.iter().enumerate() {
            if matches!(i, 4 | 6 | 8 | 10) {
                f.write_str("-")?;
            }
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl FromStr for Uuid {
    type Err = String;

    /// 32 hex digits, in either case, with or without the four hyphens of
    /// the 8-4-4-4-12 form.
    fn from_str(text: &str) -> Result<Uuid, String> {
        let bad = || format!("{text:?} is not a uuid (32 hex digits, 8-4-4-4-12)");
        let hex: Vec<u8> = match text.len() {
            36 if [8, 13, 18, 23].iter().all(|&i| text.as_bytes()[i] == b'-') => {
                text.bytes().filter(|&b| b != b'-').collect()
            }
            32 => text.bytes().collect(),
            _ => return Err(bad()),
        };
        if hex.len() != 32 {
            return Err(bad());
        }
        let mut bytes = [0u8; 16];
        for (byte, pair) in bytes.iter_mut().zip(hex.chunks_exact(2)) {
            let digit = |c: u8| (c as char).to_digit(16).ok_or_else(bad);
            *byte = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
        }
        Ok(Uuid(bytes))
    }
}

impl ToSql for Uuid {
    fn type_oid(&self) -> Oid {
        oid::UUID
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        write_display(self, out)
    }
}

impl<'a> FromSql<'a> for Uuid {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::UUID], "Uuid")?;
        utf8(not_null(raw)?)?.parse()
    }
}

/// With the `serde_json` feature: `json` and `jsonb` columns as a parsed
/// document, and a document as a parameter (sent as text, untyped, so the
/// server reads it as whichever of the two the query needs).
#[cfg(feature = "serde_json")]
mod json {
    use super::super::{expect_type, not_null, oid, FromSql, IsNull, Oid, ToSql};

    impl ToSql for serde_json::Value {
        fn type_oid(&self) -> Oid {
            oid::UNSPECIFIED
        }
        fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
            // Serializing a Value into a Vec cannot fail (its map keys are strings).
            let _ = serde_json::to_writer(&mut *out, self);
            IsNull::No
        }
    }

    impl<'a> FromSql<'a> for serde_json::Value {
        fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
            expect_type(type_oid, &[oid::JSON, oid::JSONB], "serde_json::Value")?;
            serde_json::from_slice(not_null(raw)?).map_err(|e| format!("is not JSON: {e}"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn numeric_text_is_checked_not_converted() {
        for good in [
            "0",
            "-12.50",
            "+.5",
            "7.",
            "1e-7",
            "1.5E+10",
            "NaN",
            "-Infinity",
            "infinity",
        ] {
            assert!(Numeric::new(good).is_ok(), "{good}");
        }
        for bad in ["", ".", "-", "1.2.3", "1e", "e5", "12a", "1 000", "--1", "0x10"] {
            assert!(Numeric::new(bad).is_err(), "{bad:?}");
        }
        assert_eq!(Numeric::new("-12.50").unwrap().to_f64(), -12.5);
        assert!(Numeric::new("NaN").unwrap().to_f64().is_nan());
        assert!(Numeric::from_sql(oid::INT4, Some(b"1")).is_err());
    }

    #[test]
    fn uuid_reads_the_canonical_and_the_bare_form() {
        let u: Uuid = "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11".parse().unwrap();
        assert_eq!(u.to_string(), "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        assert_eq!("a0eebc999c0b4ef8bb6d6bb9bd380a11".parse::<Uuid>(), Ok(u));
        for bad in [
            "",
            "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1",
            "a0eebc99+9c0b-4ef8-bb6d-6bb9bd380a11",
            "zz",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn uuid_round_trips(bytes in any::<[u8; 16]>()) {
            let u = Uuid(bytes);
            prop_assert_eq!(u.to_string().parse::<Uuid>(), Ok(u));
        }

        #[test]
        fn any_text_is_a_numeric_or_an_error_never_a_panic(text in "\\PC{0,24}") {
            if let Ok(n) = Numeric::new(text) {
                let _ = n.to_f64();
            }
        }

        #[test]
        fn any_text_is_a_uuid_or_an_error_never_a_panic(text in "\\PC{0,40}") {
            let _ = text.parse::<Uuid>();
        }
    }
}
