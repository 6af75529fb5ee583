//! One-dimensional arrays in their text form: `{1,2,NULL}`,
//! `{"a b","c\"d",""}`.
//!
//! The rules, from the server's `array_out` and `array_in`:
//!
//! - elements are separated by `,` (every type here; `box` alone uses `;`);
//! - an element is written in double quotes when it is empty, contains
//!   `{`, `}`, `,`, `"`, `\` or white space (space, tab, newline, carriage
//!   return, vertical tab, form feed), or reads `NULL` in any case; inside
//!   quotes `"` and `\` are escaped with a backslash;
//! - an unquoted `NULL` (any case) is SQL NULL; a quoted `"NULL"` is the text;
//! - on input, white space around an unquoted element is ignored, and a
//!   backslash escapes the next character even outside quotes.
//!
//! Multi-dimensional arrays (`{{1,2},{3,4}}`) and arrays with explicit
//! bounds (`[0:1]={1,2}`) are refused by name: a `Vec` cannot hold their
//! shape. Read them as `String`.
//!
//! The parser allocates what the text holds, never more, and every input
//! gives a value or an error (property-tested below).
//!
//! Spec: the PostgreSQL manual, "Arrays", § "Array Value Input" and
//! "Array Input and Output Syntax", in the data types chapter.

use super::{oid, utf8, FromSql, IsNull, Numeric, Oid, ToSql, Uuid};

/// An element type of the arrays connlab reads and writes: which array
/// types hold it, and the element type of each.
pub trait ArrayElement {
    /// `(array type, element type)` pairs; the first is announced when a
    /// `Vec` of this type is sent as a parameter.
    const ARRAY_TYPES: &'static [(Oid, Oid)];
}

macro_rules! array_element {
    ($($t:ty => [$(($array:expr, $element:expr)),*]),* $(,)?) => {$(
        impl ArrayElement for $t {
            const ARRAY_TYPES: &'static [(Oid, Oid)] = &[$(($array, $element)),*];
        }
    )*};
}
const INTEGER_ARRAYS: [(Oid, Oid); 3] = [
    (oid::INT2_ARRAY, oid::INT2),
    (oid::INT4_ARRAY, oid::INT4),
    (oid::INT8_ARRAY, oid::INT8),
];
impl ArrayElement for i16 {
    const ARRAY_TYPES: &'static [(Oid, Oid)] = &INTEGER_ARRAYS;
}
impl ArrayElement for i32 {
    const ARRAY_TYPES: &'static [(Oid, Oid)] = &[INTEGER_ARRAYS[1], INTEGER_ARRAYS[0], INTEGER_ARRAYS[2]];
}
impl ArrayElement for i64 {
    const ARRAY_TYPES: &'static [(Oid, Oid)] = &[INTEGER_ARRAYS[2], INTEGER_ARRAYS[0], INTEGER_ARRAYS[1]];
}
array_element!(
    bool => [(oid::BOOL_ARRAY, oid::BOOL)],
    f64 => [(oid::FLOAT8_ARRAY, oid::FLOAT8), (oid::FLOAT4_ARRAY, oid::FLOAT4)],
    String => [(oid::TEXT_ARRAY, oid::TEXT), (oid::VARCHAR_ARRAY, oid::VARCHAR)],
    Numeric => [(oid::NUMERIC_ARRAY, oid::NUMERIC)],
    Uuid => [(oid::UUID_ARRAY, oid::UUID)],
);

/// `{1,NULL,3}` reads as `Vec<Option<i32>>`.
impl<T: ArrayElement> ArrayElement for Option<T> {
    const ARRAY_TYPES: &'static [(Oid, Oid)] = T::ARRAY_TYPES;
}

/// Split an array's text into its elements, unquoted and unescaped;
/// `None` for NULL.
pub fn parse_array(text: &str) -> Result<Vec<Option<String>>, String> {
    let body = text.trim_matches(is_array_space);
    if body.starts_with('[') {
        return Err("is an array with explicit bounds ([lo:hi]={...}); read it as a String".to_string());
    }
    let inner = body
        .strip_prefix('{')
        .and_then(|b| b.strip_suffix('}'))
        .ok_or_else(|| format!("{:?} is not an array ({{...}})", Short(text)))?;
    let mut elements = Vec::new();
    let mut rest = inner.trim_start_matches(is_array_space);
    if rest.is_empty() {
        return Ok(elements);
    }
    loop {
        let (element, after) = match rest.strip_prefix('"') {
            Some(quoted) => quoted_element(quoted)?,
            None => unquoted_element(rest)?,
        };
        elements.push(element);
        let after = after.trim_start_matches(is_array_space);
        match after.strip_prefix(',') {
            Some(next) => rest = next.trim_start_matches(is_array_space),
            None if after.is_empty() => return Ok(elements),
            None => return Err(format!("has {:?} after an element, not ',' or '}}'", Short(after))),
        }
    }
}

/// The white space `array_in` skips (its `scanner_isspace`): note the
/// vertical tab, which `char::is_ascii_whitespace` leaves out.
fn is_array_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// After an opening `"`: up to the closing one, unescaping `\x` to `x`.
fn quoted_element(text: &str) -> Result<(Option<String>, &str), String> {
    let mut value = String::new();
    let mut chars = text.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((Some(value), &text[i + 1..])),
            '\\' => value.push(chars.next().ok_or("ends inside a quoted element")?.1),
            c => value.push(c),
        }
    }
    Err("ends inside a quoted element (no closing '\"')".to_string())
}

/// Up to the next unescaped `,` (or the end); trailing white space that was
/// not escaped is dropped, and a bare `NULL` is NULL.
fn unquoted_element(text: &str) -> Result<(Option<String>, &str), String> {
    let mut value = String::new();
    let mut kept = 0; // value's length up to its last escaped or non-space char
    let mut escaped_any = false;
    let mut chars = text.char_indices();
    let end = loop {
        match chars.next() {
            None => break text.len(),
            Some((i, ',')) => break i,
            Some((_, '\\')) => {
                value.push(chars.next().ok_or("ends with a lone backslash")?.1);
                kept = value.len();
                escaped_any = true;
            }
            Some((_, c @ ('"' | '{' | '}'))) => {
                return Err(match c {
                    '{' => "is a multi-dimensional array; read it as a String".to_string(),
                    _ => format!("has an unescaped {c:?} inside an unquoted element"),
                })
            }
            Some((_, c)) => {
                value.push(c);
                if !is_array_space(c) {
                    kept = value.len();
                }
            }
        }
    };
    value.truncate(kept);
    if value.is_empty() && !escaped_any {
        return Err("has an empty unquoted element".to_string());
    }
    let null = !escaped_any && value.eq_ignore_ascii_case("NULL");
    Ok(((!null).then_some(value), &text[end..]))
}

/// Append one element, quoted when `array_in` would otherwise misread it.
fn push_element(out: &mut Vec<u8>, text: &[u8]) {
    let special = |b: &u8| matches!(b, b'{' | b'}' | b',' | b'"' | b'\\') || is_array_space(char::from(*b));
    if !text.is_empty() && !text.eq_ignore_ascii_case(b"NULL") && !text.iter().any(special) {
        out.extend_from_slice(text);
        return;
    }
    out.push(b'"');
    for &b in text {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// Write `{e1,e2,...}` from each element's own text form.
fn array_to_text<T: ToSql>(elements: &[T], out: &mut Vec<u8>) -> IsNull {
    let mut scratch = Vec::new();
    out.push(b'{');
    for (i, element) in elements.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        scratch.clear();
        match element.to_text(&mut scratch) {
            IsNull::Yes => out.extend_from_slice(b"NULL"),
            IsNull::No => push_element(out, &scratch),
        }
    }
    out.push(b'}');
    IsNull::No
}

impl<T: ToSql + ArrayElement> ToSql for [T] {
    fn type_oid(&self) -> Oid {
        T::ARRAY_TYPES.first().map_or(oid::UNSPECIFIED, |&(array, _)| array)
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        array_to_text(self, out)
    }
}

impl<T: ToSql + ArrayElement> ToSql for Vec<T> {
    fn type_oid(&self) -> Oid {
        self.as_slice().type_oid()
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        array_to_text(self, out)
    }
}

/// An array column whose type holds `T`; each element is read as `T`
/// reads its element type, so a NULL element needs `Vec<Option<T>>`.
impl<'a, T: for<'e> FromSql<'e> + ArrayElement> FromSql<'a> for Vec<T> {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        let element_oid = T::ARRAY_TYPES
            .iter()
            .find(|&&(array, _)| array == type_oid)
            .map(|&(_, element)| element)
            .ok_or_else(|| format!("has type oid {type_oid}, which is not an array of this element type"))?;
        let text = utf8(super::not_null(raw)?)?;
        parse_array(text)?
            .iter()
            .enumerate()
            .map(|(i, element)| {
                T::from_sql(element_oid, element.as_deref().map(str::as_bytes))
                    .map_err(|why| format!("element {}: {why}", i + 1))
            })
            .collect()
    }
}

/// Text cut short for an error message.
struct Short<'a>(&'a str);

impl std::fmt::Debug for Short<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0.char_indices().nth(40) {
            Some((cut, _)) => write!(f, "{:?}…", &self.0[..cut]),
            None => write!(f, "{:?}", self.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::pg::connection::types::text_of as text;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn server_spellings_parse() {
        assert_eq!(parse_array("{}").unwrap(), Vec::<Option<String>>::new());
        assert_eq!(parse_array("{1,2,NULL}").unwrap(), vec![s("1"), s("2"), None]);
        assert_eq!(
            parse_array(r#"{"a b","c\"d","","NULL",null,\N}"#).unwrap(),
            vec![s("a b"), s("c\"d"), s(""), s("NULL"), None, s("N")]
        );
        assert_eq!(parse_array(" { x , y\\ } ").unwrap(), vec![s("x"), s("y ")]);
    }

    #[test]
    fn shapes_a_vec_cannot_hold_are_refused_by_name() {
        assert!(parse_array("{{1,2},{3,4}}").unwrap_err().contains("multi-dimensional"));
        assert!(parse_array("[0:1]={1,2}").unwrap_err().contains("bounds"));
        for bad in ["", "{", "1,2", "{1,,2}", "{\"a}", "{a\"b}", "{1,}", "{a\\}", "{1} x"] {
            assert!(parse_array(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn parameters_quote_what_needs_it() {
        assert_eq!(text(&vec![1i32, -2]), "{1,-2}");
        assert_eq!(text(&vec![Some(1i64), None]), "{1,NULL}");
        let words = vec![
            "a b".to_string(),
            "c\"d\\".to_string(),
            String::new(),
            "null".to_string(),
        ];
        assert_eq!(text(&words), r#"{"a b","c\"d\\","","null"}"#);
        assert_eq!(words.type_oid(), oid::TEXT_ARRAY);
        assert_eq!(Vec::<Option<i16>>::new().type_oid(), oid::INT2_ARRAY);
    }

    #[test]
    fn elements_are_type_checked_and_null_needs_an_option() {
        assert_eq!(Vec::<i64>::from_sql(oid::INT4_ARRAY, Some(b"{1,2}")), Ok(vec![1, 2]));
        assert!(Vec::<i32>::from_sql(oid::INT4_ARRAY, Some(b"{1,NULL}"))
            .unwrap_err()
            .contains("element 2"));
        assert_eq!(
            Vec::<Option<i32>>::from_sql(oid::INT4_ARRAY, Some(b"{1,NULL}")),
            Ok(vec![Some(1), None])
        );
        assert!(Vec::<i32>::from_sql(oid::TEXT_ARRAY, Some(b"{1}")).is_err());
        assert!(Vec::<String>::from_sql(oid::INT4_ARRAY, Some(b"{1}")).is_err());
    }

    proptest! {
        #[test]
        fn text_arrays_round_trip(v in proptest::collection::vec(proptest::option::of("\\PC{0,12}|NULL|null| |[{}\",\\\\ ]{1,4}"), 0..12)) {
            let back = Vec::<Option<String>>::from_sql(oid::TEXT_ARRAY, Some(text(&v).as_bytes())).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn integer_arrays_round_trip(v in proptest::collection::vec(proptest::option::of(any::<i64>()), 0..20)) {
            let back = Vec::<Option<i64>>::from_sql(oid::INT8_ARRAY, Some(text(&v).as_bytes())).unwrap();
            prop_assert_eq!(back, v);
        }

        #[test]
        fn any_text_is_an_array_or_an_error_never_a_panic(text in "[{}\",\\\\ NUL1a\\[\\]:=]{0,30}|\\PC{0,40}") {
            let _ = parse_array(&text);
        }
    }
}
