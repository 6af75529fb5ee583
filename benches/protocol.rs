//! What the wire protocol costs on the CPU, with no socket involved.
//!
//! Run: `cargo bench --bench protocol` (about 30 s). Groups, named after the question they answer:
//!
//! - `encode/...`: building the bytes of one extended query for
//!   `SELECT name FROM users WHERE id = $1` into a warm (reused) buffer: the full
//!   Parse+Bind+Execute+Sync of an unnamed statement, and Bind+Execute+Sync of a prepared one.
//! - `decode/...`: reading the server's answer, ParseComplete, BindComplete, RowDescription, DataRow,
//!   CommandComplete, ReadyForQuery: the exact bytes PostgreSQL 15 sent (from the recorded transcript).
//! - `auth/...`: SCRAM-SHA-256's client-final (PBKDF2 with 4096 iterations dominates), and MD5 for
//!   contrast. (Checking the server's signature is one HMAC: not worth a group.)
//!
//! The numbers measured on this machine, and what they mean, are in `docs/protocol.md`.

use std::hint::black_box;
use std::time::Duration;

use connlab::pg::auth::{md5_password, ScramSha256};
use connlab::pg::protocol::frontend::{self, IsNull};
use connlab::pg::protocol::{Decoder, Format, Message};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SQL: &str = "SELECT name FROM users WHERE id = $1";
/// `int4`'s type oid.
const INT4_OID: u32 = 23;

/// PostgreSQL 15's reply to Parse/Bind/Describe(portal)/Execute/Sync for `SQL` with `$1 = 42`, as
/// recorded in `tests/fixtures/pg15_transcript.txt` (session `connlab-extended-query`).
const RESPONSE_HEX: &str = "31000000043200000004540000001d00016e616d650000004003000200000019ffffffffffff0000\
440000000f000100000005416c696365430000000d53454c4543542031005a0000000549";

/// RFC 7677 §3's exchange: user `user`, password `pencil`, 4096 iterations.
const RFC_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
const RFC_SERVER_FIRST: &[u8] =
    b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("RESPONSE_HEX is hex"))
        .collect()
}

/// Write an `i32` parameter as text, the way a text-format client would.
fn int_as_text(v: &i32, out: &mut Vec<u8>) -> IsNull {
    use std::io::Write;
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{v}");
    IsNull::No
}

fn encode(c: &mut Criterion) {
    let mut g = c.benchmark_group("encode");
    let mut buf = Vec::with_capacity(256);
    let id = [42i32];
    g.bench_function("parse_bind_execute_sync/unnamed", |b| {
        b.iter(|| {
            buf.clear();
            frontend::parse(&mut buf, "", black_box(SQL), &[INT4_OID]).expect("no NUL");
            frontend::bind(&mut buf, "", "", &[], black_box(&id), int_as_text, &[]).expect("small");
            frontend::execute(&mut buf, "", 0).expect("no NUL");
            frontend::sync(&mut buf);
            black_box(buf.len())
        })
    });
    g.bench_function("bind_execute_sync/prepared_binary", |b| {
        b.iter(|| {
            buf.clear();
            let encode_binary = |v: &i32, out: &mut Vec<u8>| {
                out.extend_from_slice(&v.to_be_bytes());
                IsNull::No
            };
            frontend::bind(
                &mut buf,
                "",
                "s1",
                &[Format::Binary],
                black_box(&id),
                encode_binary,
                &[],
            )
            .expect("small");
            frontend::execute(&mut buf, "", 0).expect("no NUL");
            frontend::sync(&mut buf);
            black_box(buf.len())
        })
    });
    g.finish();
}

fn decode(c: &mut Criterion) {
    let response = unhex(RESPONSE_HEX);
    let decoder = Decoder::new();
    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(response.len() as u64));
    g.bench_function("extended_query_response/6_messages", |b| {
        b.iter(|| {
            let mut at = 0;
            let mut fields = 0usize;
            while let Some((msg, used)) = decoder.decode(black_box(&response[at..])).expect("valid") {
                if let Message::DataRow(row) = msg {
                    fields += row.fields().map(|f| f.map_or(0, <[u8]>::len)).sum::<usize>();
                }
                at += used;
            }
            black_box(fields)
        })
    });
    g.finish();
}

fn auth(c: &mut Criterion) {
    let mut g = c.benchmark_group("auth");
    g.bench_function("scram_client_final/4096_iterations", |b| {
        b.iter(|| {
            let mut scram = ScramSha256::with_nonce("user", "pencil", RFC_NONCE);
            black_box(scram.server_first(black_box(RFC_SERVER_FIRST)).expect("RFC vector"))
        })
    });
    g.bench_function("md5_password", |b| {
        b.iter(|| black_box(md5_password(black_box("alice"), black_box("secret"), *b"salt")))
    });
    g.finish();
}

fn config() -> Criterion {
    // Short runs: the whole file stays well under a minute on a shared 2-core machine.
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(30)
}

criterion_group! { name = benches; config = config(); targets = encode, decode, auth }
criterion_main!(benches);
