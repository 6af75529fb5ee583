//! The types a user meets first, round-tripped through a real throwaway
//! server on every poller backend: each value goes out as a parameter,
//! the server compares it with its own literal (so our text is what the
//! server means), and it comes back as the same Rust value. NULL travels
//! as `None` for each.

mod util;

use std::time::{Duration, SystemTime};

use connlab::pg::connection::types::{Date, Numeric, Timestamp, Uuid};
use connlab::pg::{Connection, FromSql, ToSql};
use connlab::testbed::postgres::Cluster;
use util::on_every_backend;

async fn connect() -> Connection {
    Connection::connect_url(&Cluster::shared().unwrap().url())
        .await
        .unwrap()
}

/// Send `value` as `$1::sql_type`, check the server reads it as the
/// literal `expected` (a SQL expression), and read it back.
async fn round_trip<T>(conn: &mut Connection, sql_type: &str, value: &T, expected: &str) -> T
where
    T: ToSql + for<'r> FromSql<'r>,
{
    let sql =
        format!("SELECT $1::{sql_type} AS v, $1::{sql_type} IS NOT DISTINCT FROM ({expected})::{sql_type} AS same");
    let rows = conn.query(&sql, &[value]).await.unwrap();
    let row = rows.get(0).unwrap();
    assert!(
        row.get::<bool>("same").unwrap(),
        "{sql_type}: the server did not read our text as {expected}"
    );
    row.get::<T>("v").unwrap()
}

/// A NULL of the type comes back as `None`.
async fn null_round_trip<T>(conn: &mut Connection, sql_type: &str)
where
    T: ToSql + for<'r> FromSql<'r> + std::fmt::Debug,
{
    let back: Option<T> = round_trip(conn, sql_type, &None::<T>, "NULL").await;
    assert!(back.is_none(), "{sql_type}: {back:?}");
}

#[test]
fn numeric_keeps_every_digit() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        for text in [
            "12.50",
            "-0.000000000000000000000000001",
            "123456789012345678901234567890.123",
            "NaN",
        ] {
            let n = Numeric::new(text).unwrap();
            assert_eq!(round_trip(&mut conn, "numeric", &n, &format!("'{text}'")).await, n);
        }
        // The server normalises what it prints: an exponent comes back as digits.
        let back = round_trip(&mut conn, "numeric", &Numeric::new("1.5e3").unwrap(), "1500").await;
        assert_eq!(back.as_str(), "1500");
        null_round_trip::<Numeric>(&mut conn, "numeric").await;
        // Not a float, by type: the error names the type that reads it.
        let rows = conn.query("SELECT 1.5::numeric", &[]).await.unwrap();
        let err = rows.get(0).unwrap().get::<f64>(0).unwrap_err().to_string();
        assert!(err.contains("Numeric"), "{err}");
    });
}

#[test]
fn uuid_round_trips() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let u: Uuid = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11".parse().unwrap();
        assert_eq!(
            round_trip(&mut conn, "uuid", &u, "'A0EEBC999C0B4EF8BB6D6BB9BD380A11'").await,
            u
        );
        let random = conn.query("SELECT gen_random_uuid()", &[]).await.unwrap();
        let r: Uuid = random.get(0).unwrap().get(0).unwrap();
        assert_eq!(r.as_bytes()[6] >> 4, 4, "a version 4 uuid: {r}");
        null_round_trip::<Uuid>(&mut conn, "uuid").await;
    });
}

fn at(secs: i64, micros: u32) -> SystemTime {
    let offset = Duration::from_secs(secs.unsigned_abs());
    let t = if secs >= 0 {
        SystemTime::UNIX_EPOCH + offset
    } else {
        SystemTime::UNIX_EPOCH - offset
    };
    t + Duration::from_micros(micros.into())
}

#[test]
fn timestamptz_is_an_instant_whatever_the_session_time_zone() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let cases = [
            (at(1_709_285_400, 250_000), "'2024-03-01 09:30:00.25+00'"),
            (at(0, 0), "'1970-01-01 00:00:00+00'"),
            (at(-2_208_988_800, 1), "'1900-01-01 00:00:00.000001+00'"),
            (at(-62_167_219_200, 0), "'0001-01-01 00:00:00+00 BC'"),
        ];
        // UTC, an offset with minutes, and one with seconds for 1900 (Amsterdam's mean time).
        for zone in ["UTC", "Asia/Kolkata", "Europe/Amsterdam", "America/St_Johns"] {
            conn.simple_query(&format!("SET TimeZone = '{zone}'")).await.unwrap();
            for (t, literal) in &cases {
                assert_eq!(
                    round_trip(&mut conn, "timestamptz", t, literal).await,
                    *t,
                    "{zone} {literal}"
                );
            }
        }
        null_round_trip::<SystemTime>(&mut conn, "timestamptz").await;
        // now() agrees with our clock to within a minute.
        let rows = conn.query("SELECT now()", &[]).await.unwrap();
        let now: SystemTime = rows.get(0).unwrap().get(0).unwrap();
        let skew = now.duration_since(SystemTime::now()).unwrap_or_else(|e| e.duration());
        assert!(skew < Duration::from_secs(60), "{skew:?}");
        // infinity has no SystemTime: the error says what to read instead.
        let rows = conn.query("SELECT 'infinity'::timestamptz", &[]).await.unwrap();
        let err = rows.get(0).unwrap().get::<SystemTime>(0).unwrap_err().to_string();
        assert!(err.contains("String"), "{err}");
    });
}

#[test]
fn timestamp_and_date_are_civil_values() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let leap = Date::new(2024, 2, 29).unwrap();
        assert_eq!(round_trip(&mut conn, "date", &leap, "'2024-02-29'").await, leap);
        let bc = Date::new(-43, 3, 15).unwrap();
        assert_eq!(round_trip(&mut conn, "date", &bc, "'0044-03-15 BC'").await, bc);
        let far = Date::new(12345, 6, 7).unwrap();
        assert_eq!(round_trip(&mut conn, "date", &far, "'12345-06-07'").await, far);
        let ts = Timestamp::new(leap, 23, 59, 59, 999_999).unwrap();
        assert_eq!(
            round_trip(&mut conn, "timestamp", &ts, "'2024-02-29 23:59:59.999999'").await,
            ts
        );
        // A timestamp has no zone: SET TimeZone does not move it.
        conn.simple_query("SET TimeZone = 'Asia/Tokyo'").await.unwrap();
        assert_eq!(
            round_trip(&mut conn, "timestamp", &ts, "'2024-02-29 23:59:59.999999'").await,
            ts
        );
        null_round_trip::<Date>(&mut conn, "date").await;
        null_round_trip::<Timestamp>(&mut conn, "timestamp").await;
        // Another DateStyle is refused with the setting's name.
        conn.simple_query("SET DateStyle = 'German'").await.unwrap();
        let rows = conn.query("SELECT '2024-02-29'::date", &[]).await.unwrap();
        let err = rows.get(0).unwrap().get::<Date>(0).unwrap_err().to_string();
        assert!(err.contains("DateStyle"), "{err}");
    });
}

#[test]
fn json_and_jsonb_read_as_text() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let doc = r#"{"a": [1, 2, null], "b": "x\"y"}"#;
        let back = round_trip(
            &mut conn,
            "jsonb",
            &doc.to_string(),
            &format!("'{}'", doc.replace('\'', "''")),
        )
        .await;
        // jsonb normalises spacing and key order; json keeps the text as sent.
        assert_eq!(back, r#"{"a": [1, 2, null], "b": "x\"y"}"#);
        // json has no equality operator; it keeps the text exactly as sent.
        let rows = conn.query("SELECT $1::json", &[&doc]).await.unwrap();
        assert_eq!(rows.get(0).unwrap().get::<&str>(0).unwrap(), doc);
        null_round_trip::<String>(&mut conn, "jsonb").await;
    });
}

#[cfg(feature = "serde_json")]
#[test]
fn json_as_serde_values() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let doc = serde_json::json!({"id": 7, "tags": ["a", "b c"], "none": null});
        let literal = format!("'{}'", doc);
        assert_eq!(round_trip(&mut conn, "jsonb", &doc, &literal).await, doc);
        let rows = conn.query("SELECT $1::json", &[&doc]).await.unwrap();
        assert_eq!(rows.get(0).unwrap().get::<serde_json::Value>(0).unwrap(), doc);
    });
}

#[test]
fn int_and_text_arrays_round_trip_with_nulls_and_quoting() {
    on_every_backend(|_| async {
        let mut conn = connect().await;
        let ints = vec![Some(1i32), None, Some(-2_147_483_648)];
        assert_eq!(
            round_trip(&mut conn, "int4[]", &ints, "ARRAY[1, NULL, -2147483648]").await,
            ints
        );
        let longs: Vec<i64> = vec![];
        assert_eq!(round_trip(&mut conn, "int8[]", &longs, "'{}'").await, longs);
        let words: Vec<Option<String>> = ["a b", "c\"d", "", "NULL", "{x,y}", "back\\slash", "tab\there", "ünï"]
            .iter()
            .map(|w| Some(w.to_string()))
            .chain([None])
            .collect();
        let literal = "ARRAY['a b', 'c\"d', '', 'NULL', '{x,y}', 'back\\slash', E'tab\\there', 'ünï', NULL]";
        assert_eq!(round_trip(&mut conn, "text[]", &words, literal).await, words);
        // Reading the server's own arrays, built in SQL, and using one in a query.
        let rows = conn
            .query(
                "SELECT array_agg(n ORDER BY n) AS ns FROM generate_series(1, 5) n WHERE n = ANY($1)",
                &[&vec![2i64, 4, 9]],
            )
            .await
            .unwrap();
        assert_eq!(rows.get(0).unwrap().get::<Vec<i32>>("ns").unwrap(), vec![2, 4]);
        null_round_trip::<Vec<i32>>(&mut conn, "int4[]").await;
        // A shape a Vec cannot hold is an error that says so.
        let rows = conn.query("SELECT '{{1,2},{3,4}}'::int4[]", &[]).await.unwrap();
        let err = rows.get(0).unwrap().get::<Vec<i32>>(0).unwrap_err().to_string();
        assert!(err.contains("multi-dimensional"), "{err}");
    });
}
