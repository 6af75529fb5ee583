//! `timestamptz`, `timestamp` and `date` in their ISO text form.
//!
//! | column type | Rust type | why |
//! |---|---|---|
//! | `timestamptz` | [`std::time::SystemTime`] | both are an instant; the server prints it in the session's `TimeZone` with its offset (`2024-03-01 09:30:00.25+01`), which we apply |
//! | `timestamp` | [`Timestamp`] | a wall-clock reading with *no* zone: turning it into an instant would invent one |
//! | `date` | [`Date`] | a calendar day, not an instant either |
//!
//! `chrono` or `time` would give arithmetic, formatting and time-zone
//! tables; a client that only carries values in and out needs none of
//! that, and the conversion is one well-known function each way (days ↔
//! proleptic Gregorian civil date, after Howard Hinnant's `days_from_civil`,
//! which is PostgreSQL's calendar too). A program that wants chrono
//! converts from `SystemTime` or from the fields.
//!
//! Parsing expects `DateStyle` `ISO` (the server's default); another
//! style is refused with an error that names the setting. `infinity` and
//! `-infinity` have no Rust value here: read such a column as `String`.
//! Years before 1 AD are written `... BC` by the server and held as
//! astronomical years (1 BC is year 0). Precision is the server's, one
//! microsecond: a `SystemTime` sent with nanoseconds loses them.
//!
//! Spec: the PostgreSQL manual, "Date/Time Types" (§ "Date/Time Output",
//! ISO style) in the data types chapter.

use std::fmt;
use std::time::{Duration, SystemTime};

use super::{expect_type, not_null, oid, utf8, write_display, FromSql, IsNull, Oid, ToSql};

const SECONDS_PER_DAY: i64 = 86_400;

/// A calendar date (PostgreSQL `date`), proleptic Gregorian, with
/// astronomical years (year 0 is 1 BC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date {
    year: i32,
    month: u8,
    day: u8,
}

impl Date {
    /// A date, if that day exists (`2024-02-30` does not).
    pub fn new(year: i32, month: u8, day: u8) -> Option<Date> {
        let date = Date { year, month, day };
        ((1..=12).contains(&month) && day >= 1 && day <= days_in_month(year, month)).then_some(date)
    }

    /// The year (astronomical: 0 is 1 BC, -1 is 2 BC).
    pub fn year(&self) -> i32 {
        self.year
    }

    /// The month, 1 to 12.
    pub fn month(&self) -> u8 {
        self.month
    }

    /// The day of the month, from 1.
    pub fn day(&self) -> u8 {
        self.day
    }

    /// Days since 1970-01-01 (negative before it).
    fn days_since_epoch(&self) -> i64 {
        // Count years from March, so the leap day is the last of the year.
        let m = i64::from(self.month);
        let y = i64::from(self.year) - i64::from(m <= 2);
        let era = y.div_euclid(400);
        let year_of_era = y - era * 400;
        let day_of_year = (153 * ((m + 9) % 12) + 2) / 5 + i64::from(self.day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        era * 146_097 + day_of_era - 719_468
    }

    /// The inverse of `days_since_epoch`; `None` past `i32` years.
    fn from_days_since_epoch(days: i64) -> Option<Date> {
        let z = days.checked_add(719_468)?;
        let era = z.div_euclid(146_097);
        let day_of_era = z - era * 146_097;
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = (day_of_year - (153 * mp + 2) / 5 + 1) as u8;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        Some(Date {
            year: i32::try_from(year).ok()?,
            month,
            day,
        })
    }
}

fn is_leap(year: i32) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i32, month: u8) -> u8 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// A date and a time of day with no time zone (PostgreSQL `timestamp`),
/// to the microsecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp {
    /// The day.
    pub date: Date,
    /// Microseconds since that day's midnight, below 86,400,000,000.
    micros: u64,
}

impl Timestamp {
    /// A timestamp, if the time of day exists (no leap second: PostgreSQL
    /// has none either).
    pub fn new(date: Date, hour: u8, minute: u8, second: u8, microsecond: u32) -> Option<Timestamp> {
        let ok = hour < 24 && minute < 60 && second < 60 && microsecond < 1_000_000;
        let seconds = u64::from(hour) * 3600 + u64::from(minute) * 60 + u64::from(second);
        ok.then_some(Timestamp {
            date,
            micros: seconds * 1_000_000 + u64::from(microsecond),
        })
    }

    /// `(hour, minute, second, microsecond)`.
    pub fn time(&self) -> (u8, u8, u8, u32) {
        let seconds = self.micros / 1_000_000;
        (
            (seconds / 3600) as u8,
            (seconds / 60 % 60) as u8,
            (seconds % 60) as u8,
            (self.micros % 1_000_000) as u32,
        )
    }

    /// Microseconds since 1970-01-01 00:00, on the same clock-less scale.
    fn micros_since_epoch(&self) -> i128 {
        i128::from(self.date.days_since_epoch()) * i128::from(SECONDS_PER_DAY) * 1_000_000 + i128::from(self.micros)
    }

    fn from_micros_since_epoch(micros: i128) -> Option<Timestamp> {
        let per_day = i128::from(SECONDS_PER_DAY) * 1_000_000;
        let days = i64::try_from(micros.div_euclid(per_day)).ok()?;
        Some(Timestamp {
            date: Date::from_days_since_epoch(days)?,
            micros: micros.rem_euclid(per_day) as u64,
        })
    }
}

impl fmt::Display for Date {
    /// ISO: `2024-03-01`, `0044-03-15 BC`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, bc) = match self.year {
            y if y <= 0 => (1 - i64::from(y), " BC"),
            y => (i64::from(y), ""),
        };
        write!(f, "{year:04}-{:02}-{:02}{bc}", self.month, self.day)
    }
}

impl fmt::Display for Timestamp {
    /// ISO: `2024-03-01 09:30:00.250000` (always six fractional digits).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (h, m, s, us) = self.time();
        let date = self.date.to_string();
        // The era goes after the time, as the server writes it.
        let (day, bc) = date.split_at(date.strip_suffix(" BC").map_or(date.len(), str::len));
        write!(f, "{day} {h:02}:{m:02}:{s:02}.{us:06}{bc}")
    }
}

/// A cursor over ISO date/time text, keeping the whole text for error
/// messages. A trailing ` BC` is taken off first: the year it changes must
/// be known before the date is checked (5 BC, year -4, has a 29 February).
struct Iso<'t> {
    text: &'t str,
    rest: &'t str,
    bc: bool,
}

impl<'t> Iso<'t> {
    fn new(text: &'t str) -> Iso<'t> {
        let (rest, bc) = match text.strip_suffix(" BC") {
            Some(rest) => (rest, true),
            None => (text, false),
        };
        Iso { text, rest, bc }
    }

    fn error(&self) -> String {
        if self.text.ends_with("infinity") {
            return format!(
                "is {}, which this Rust type cannot hold; read it as a String",
                self.text
            );
        }
        format!(
            "{:?} is not an ISO date/time (is DateStyle ISO? SET DateStyle = ISO)",
            self.text
        )
    }

    /// One or more ASCII digits (`min` at least), as a number.
    fn number(&mut self, min: usize) -> Result<u64, String> {
        let len = self.rest.bytes().take_while(u8::is_ascii_digit).count();
        if len < min || len > 18 {
            return Err(self.error());
        }
        let (digits, rest) = self.rest.split_at(len);
        self.rest = rest;
        digits.parse().map_err(|_| self.error())
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        self.rest = self.rest.strip_prefix(c).ok_or_else(|| self.error())?;
        Ok(())
    }

    fn eat(&mut self, s: &str) -> bool {
        self.rest.strip_prefix(s).map(|rest| self.rest = rest).is_some()
    }

    fn date(&mut self) -> Result<Date, String> {
        let year = self.number(4)?;
        self.expect('-')?;
        let month = self.number(2)?;
        self.expect('-')?;
        let day = self.number(2)?;
        let fits = |n: u64| u8::try_from(n).ok();
        let year = i32::try_from(year).map_err(|_| self.error())?;
        let year = if self.bc { 1 - year } else { year };
        Date::new(year, fits(month).unwrap_or(0), fits(day).unwrap_or(0)).ok_or_else(|| self.error())
    }

    /// `HH:MM:SS[.f…]`, as microseconds since midnight (digits past the
    /// sixth are not printed by the server; refused if present).
    fn time(&mut self, date: Date) -> Result<Timestamp, String> {
        let hour = self.number(2)?;
        self.expect(':')?;
        let minute = self.number(2)?;
        self.expect(':')?;
        let second = self.number(2)?;
        let mut micros = 0;
        if self.eat(".") {
            let before = self.rest.len();
            let fraction = self.number(1)?;
            let digits = before - self.rest.len();
            if digits > 6 {
                return Err(self.error());
            }
            micros = fraction * 10u64.pow(6 - digits as u32);
        }
        let small = |n: u64| u8::try_from(n).unwrap_or(u8::MAX);
        Timestamp::new(date, small(hour), small(minute), small(second), micros as u32).ok_or_else(|| self.error())
    }

    /// `±HH[:MM[:SS]]` as seconds east of UTC.
    fn offset(&mut self) -> Result<i64, String> {
        let sign = if self.eat("+") {
            1
        } else if self.eat("-") {
            -1
        } else {
            return Err(self.error());
        };
        let mut seconds = self.number(2)? * 3600;
        if self.eat(":") {
            seconds += self.number(2)? * 60;
            if self.eat(":") {
                seconds += self.number(2)?;
            }
        }
        Ok(sign * i64::try_from(seconds).map_err(|_| self.error())?)
    }

    /// Nothing may follow.
    fn end(&self) -> Result<(), String> {
        if self.rest.is_empty() {
            Ok(())
        } else {
            Err(self.error())
        }
    }
}

fn parse_date(text: &str) -> Result<Date, String> {
    let mut iso = Iso::new(text);
    let date = iso.date()?;
    iso.end()?;
    Ok(date)
}

fn parse_timestamp(text: &str) -> Result<Timestamp, String> {
    let mut iso = Iso::new(text);
    let date = iso.date()?;
    iso.expect(' ')?;
    let ts = iso.time(date)?;
    iso.end()?;
    Ok(ts)
}

/// A `timestamptz` as microseconds since the Unix epoch, in UTC.
fn parse_timestamptz(text: &str) -> Result<i128, String> {
    let mut iso = Iso::new(text);
    let date = iso.date()?;
    iso.expect(' ')?;
    let ts = iso.time(date)?;
    let offset = iso.offset()?;
    iso.end()?;
    Ok(ts.micros_since_epoch() - i128::from(offset) * 1_000_000)
}

fn system_time_from_micros(micros: i128) -> Option<SystemTime> {
    let magnitude = Duration::from_micros(u64::try_from(micros.unsigned_abs()).ok()?);
    if micros >= 0 {
        SystemTime::UNIX_EPOCH.checked_add(magnitude)
    } else {
        SystemTime::UNIX_EPOCH.checked_sub(magnitude)
    }
}

fn micros_from_system_time(t: &SystemTime) -> i128 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => after.as_micros() as i128,
        // Before 1970: round towards the past, as the server would floor.
        Err(before) => -(before.duration().as_nanos().div_ceil(1000) as i128),
    }
}

impl ToSql for Date {
    fn type_oid(&self) -> Oid {
        oid::DATE
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        write_display(self, out)
    }
}

impl ToSql for Timestamp {
    fn type_oid(&self) -> Oid {
        oid::TIMESTAMP
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        write_display(self, out)
    }
}

/// Sent in UTC (`+00`), whatever the session's `TimeZone`.
impl ToSql for SystemTime {
    fn type_oid(&self) -> Oid {
        oid::TIMESTAMPTZ
    }
    fn to_text(&self, out: &mut Vec<u8>) -> IsNull {
        let utc = Timestamp::from_micros_since_epoch(micros_from_system_time(self));
        match utc {
            Some(ts) => {
                let text = ts.to_string();
                // The offset goes before the era: `... 00:00:00.000000+00 BC`.
                let (time, bc) = text.split_at(text.strip_suffix(" BC").map_or(text.len(), str::len));
                out.extend_from_slice(format!("{time}+00{bc}").as_bytes());
            }
            // Only a SystemTime ~ 2^31 years away: send what the server refuses by name.
            None => out.extend_from_slice(b"out of range"),
        }
        IsNull::No
    }
}

impl<'a> FromSql<'a> for Date {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::DATE], "Date")?;
        parse_date(utf8(not_null(raw)?)?)
    }
}

impl<'a> FromSql<'a> for Timestamp {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::TIMESTAMP], "Timestamp")?;
        parse_timestamp(utf8(not_null(raw)?)?)
    }
}

impl<'a> FromSql<'a> for SystemTime {
    fn from_sql(type_oid: Oid, raw: Option<&'a [u8]>) -> Result<Self, String> {
        expect_type(type_oid, &[oid::TIMESTAMPTZ], "SystemTime")?;
        let text = utf8(not_null(raw)?)?;
        let micros = parse_timestamptz(text)?;
        system_time_from_micros(micros).ok_or_else(|| format!("{text:?} is outside SystemTime's range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::pg::connection::types::text_of as text;

    #[test]
    fn the_calendar_matches_known_days() {
        assert_eq!(Date::new(1970, 1, 1).unwrap().days_since_epoch(), 0);
        assert_eq!(Date::new(2000, 3, 1).unwrap().days_since_epoch(), 11_017);
        assert_eq!(Date::new(1969, 12, 31).unwrap().days_since_epoch(), -1);
        assert!(Date::new(2023, 2, 29).is_none() && Date::new(2024, 2, 29).is_some());
        assert!(Date::new(1900, 2, 29).is_none() && Date::new(2000, 2, 29).is_some());
    }

    #[test]
    fn server_spellings_parse() {
        assert_eq!(parse_date("0044-03-15 BC").unwrap(), Date::new(-43, 3, 15).unwrap());
        assert_eq!(parse_date("0005-02-29 BC").unwrap(), Date::new(-4, 2, 29).unwrap());
        let ts = parse_timestamp("2024-03-01 09:30:00.25").unwrap();
        assert_eq!(ts.time(), (9, 30, 0, 250_000));
        // 09:30+01 is 08:30 UTC; an offset with seconds (old LMT zones) too.
        let utc = Timestamp::new(Date::new(2024, 3, 1).unwrap(), 8, 30, 0, 0).unwrap();
        assert_eq!(
            parse_timestamptz("2024-03-01 09:30:00+01").unwrap(),
            utc.micros_since_epoch()
        );
        assert_eq!(
            parse_timestamptz("2024-03-01 08:29:00-00:01").unwrap(),
            utc.micros_since_epoch()
        );
        assert_eq!(
            parse_timestamptz("1900-01-01 00:00:00+00:19:32").unwrap(),
            parse_timestamptz("1899-12-31 23:40:28+00").unwrap()
        );
        assert_eq!(text(&Date::new(0, 1, 1).unwrap()), "0001-01-01 BC");
        assert_eq!(text(&SystemTime::UNIX_EPOCH), "1970-01-01 00:00:00.000000+00");
    }

    #[test]
    fn other_styles_and_infinity_are_errors_that_say_why() {
        assert!(parse_date("03/01/2024").unwrap_err().contains("DateStyle"));
        assert!(parse_date("infinity").unwrap_err().contains("String"));
        assert!(parse_timestamp("2024-02-30 00:00:00").is_err());
        assert!(parse_timestamp("2024-03-01 24:00:00").is_err());
        assert!(parse_timestamp("2024-03-01 00:00:00.1234567").is_err());
        assert!(parse_timestamptz("2024-03-01 00:00:00").is_err());
        assert!(SystemTime::from_sql(oid::TIMESTAMP, Some(b"2024-03-01 00:00:00")).is_err());
    }

    proptest! {
        #[test]
        fn days_round_trip(days in -100_000_000i64..100_000_000) {
            let date = Date::from_days_since_epoch(days).unwrap();
            prop_assert_eq!(date.days_since_epoch(), days);
            prop_assert_eq!(parse_date(&date.to_string()).unwrap(), date);
        }

        #[test]
        fn system_time_round_trips_to_the_microsecond(micros in -(1i64 << 60)..(1i64 << 60)) {
            let t = system_time_from_micros(i128::from(micros)).unwrap();
            let back = parse_timestamptz(&text(&t)).unwrap();
            prop_assert_eq!(back, i128::from(micros));
        }

        #[test]
        fn any_text_is_a_time_or_an_error_never_a_panic(text in "[-+0-9: .BCinfty]{0,40}|\\PC{0,40}") {
            let _ = parse_date(&text);
            let _ = parse_timestamp(&text);
            let _ = parse_timestamptz(&text);
        }
    }
}
