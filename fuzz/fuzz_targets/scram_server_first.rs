//! The SCRAM-SHA-256 server-first-message parser
//! (`ScramSha256::server_first`): `r=<nonce>,s=<salt>,i=<iterations>`, read
//! from an AuthenticationSASLContinue the server chose.
//!
//! The exchange starts from the client nonce of the recorded PostgreSQL 15
//! session in `tests/fixtures/pg15_transcript.txt`, so the seed (that
//! session's real server-first) passes every check and reaches PBKDF2, and
//! the fuzzer mutates from there.
//!
//! One input is skipped, on purpose: an iteration count above 4096. The
//! parser accepts up to its `MAX_ITERATIONS` (ten million), each one a
//! PBKDF2 round, so a mutated `i=` would turn the fuzzer into a PBKDF2
//! benchmark and cost it its speed. What such a count costs the client is a
//! policy question (a ceiling), not a parsing one, and it is tested in
//! `src/pg/auth/scram.rs`.
#![no_main]

use connlab::pg::auth::ScramSha256;
use libfuzzer_sys::fuzz_target;

/// The client nonce of the recorded session (its client-first-message is
/// `n,,n=,r=HrTdHiEU5vAga5cEwjLfQ7gV`).
const NONCE: &str = "HrTdHiEU5vAga5cEwjLfQ7gV";
const CHEAP_ITERATIONS: u64 = 4096;

/// The `i=` value, if the input has one that parses as a number.
fn iterations(data: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(data).ok()?;
    let value = text.split(',').find_map(|part| part.strip_prefix("i="))?;
    value.parse().ok()
}

fuzz_target!(|data: &[u8]| {
    if iterations(data).is_some_and(|i| i > CHEAP_ITERATIONS) {
        return;
    }
    let mut scram = ScramSha256::with_nonce("", "connlab", NONCE);
    if let Ok(client_final) = scram.server_first(data) {
        // What we send back must be printable: it goes out in a SASLResponse.
        assert!(client_final.iter().all(|b| b.is_ascii_graphic()));
        // A second server-first is a protocol error, never a panic.
        assert!(scram.server_first(data).is_err());
    }
});
