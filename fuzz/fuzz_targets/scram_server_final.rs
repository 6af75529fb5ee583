//! The SCRAM-SHA-256 server-final-message parser and signature check
//! (`ScramSha256::server_final`): `v=<ServerSignature>` or `e=<error>`.
//!
//! Every run replays the first half of the recorded PostgreSQL 15 session in
//! `tests/fixtures/pg15_transcript.txt` (its nonce, password and real
//! server-first), so the input meets a client that is really waiting for
//! the server's signature, and the seed (that session's real server-final)
//! verifies. The property beyond "no panic": an input is accepted only if it
//! carries the one signature that session's keys produce, so a mutation
//! that is accepted is a forged signature getting through.
//!
//! Each run pays one PBKDF2 of 4096 rounds (the recorded count) to get
//! there, so this target is slower than the others.
#![no_main]

use connlab::pg::auth::ScramSha256;
use libfuzzer_sys::fuzz_target;

const NONCE: &str = "HrTdHiEU5vAga5cEwjLfQ7gV";
const SERVER_FIRST: &str = "r=HrTdHiEU5vAga5cEwjLfQ7gVldxyH81/K55J5xpywAOr/DVv,s=Qd/J00UL8Jjp1ITWRaL3Tg==,i=4096";
const SERVER_FINAL: &[u8] = b"v=jSZBjEwm/3WqipPbME+EXglL/GQow2ZQ43QWZmOZmpc=";

fuzz_target!(|data: &[u8]| {
    let mut scram = ScramSha256::with_nonce("", "connlab", NONCE);
    scram
        .server_first(SERVER_FIRST.as_bytes())
        .expect("the recorded server-first");
    let accepted = scram.server_final(data).is_ok();
    assert_eq!(accepted, scram.is_verified());
    if accepted {
        // Only the real signature, perhaps followed by extensions.
        assert!(
            data.starts_with(SERVER_FINAL),
            "accepted a forged server-final {data:?}"
        );
    }
});
