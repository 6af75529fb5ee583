//! The PostgreSQL backend-message decoder (`pg::protocol::Decoder`), fed a
//! byte stream the way a socket delivers it: in pieces, cut at every
//! possible boundary.
//!
//! Input: two bytes choosing the decoder's length cap (so small caps, where
//! `TooLong` fires, are explored too), then the stream. For each cut point
//! the harness decodes whatever whole messages the bytes so far hold, as a
//! connection's read loop does after every `read(2)`. It checks what a
//! framing bug would break:
//!
//! - no panic, whatever the bytes (libFuzzer reports one as a crash);
//! - a message never claims more bytes than it was given, nor zero;
//! - the stream cut in pieces frames exactly as the whole stream does:
//!   the same message lengths, and an error at the same message (a decoder
//!   that judged a prefix differently from the whole would depend on how
//!   the kernel happened to split the reads);
//! - every field iterator of a decoded message runs to its end.
#![no_main]

use connlab::pg::protocol::{Decoder, Message};
use libfuzzer_sys::fuzz_target;

/// What one pass over the stream saw: the length of each whole message, and
/// whether it ended on an error.
#[derive(Debug, PartialEq)]
struct Framing {
    lengths: Vec<usize>,
    failed: bool,
}

/// Decode `stream` with all of it available from the start.
fn whole(decoder: &Decoder, stream: &[u8]) -> Framing {
    let mut framing = Framing {
        lengths: Vec::new(),
        failed: false,
    };
    let mut at = 0;
    loop {
        match decoder.decode(&stream[at..]) {
            Ok(Some((message, used))) => {
                assert!(
                    used > 0 && used <= stream.len() - at,
                    "{used} bytes of {}",
                    stream.len() - at
                );
                touch(&message);
                framing.lengths.push(used);
                at += used;
            }
            Ok(None) => return framing,
            Err(_) => {
                framing.failed = true;
                return framing;
            }
        }
    }
}

/// Decode `stream` as it arrives one byte more at a time: after every byte,
/// take every whole message the buffer holds.
fn cut_everywhere(decoder: &Decoder, stream: &[u8]) -> Framing {
    let mut framing = Framing {
        lengths: Vec::new(),
        failed: false,
    };
    let mut at = 0;
    for end in 0..=stream.len() {
        loop {
            match decoder.decode(&stream[at..end]) {
                Ok(Some((_, used))) => {
                    assert!(used > 0 && used <= end - at);
                    framing.lengths.push(used);
                    at += used;
                }
                Ok(None) => break,
                Err(_) => {
                    framing.failed = true;
                    return framing;
                }
            }
        }
    }
    framing
}

/// Walk every lazily-parsed part of a message, as a reader of it would.
fn touch(message: &Message<'_>) {
    match message {
        Message::RowDescription(row) => {
            for column in row.columns() {
                std::hint::black_box(format!("{column:?}"));
            }
        }
        Message::DataRow(row) => {
            for field in row.fields() {
                std::hint::black_box(field);
            }
        }
        Message::ParameterDescription(types) => {
            for oid in types.types() {
                std::hint::black_box(oid);
            }
        }
        Message::NegotiateProtocolVersion { unrecognized, .. } => {
            for name in unrecognized.iter() {
                std::hint::black_box(name);
            }
        }
        other => {
            std::hint::black_box(format!("{other:?}"));
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((cap, stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    // A cap from 4 bytes up to 64 KiB, or (top bit set) the default 1 GiB.
    let cap = u16::from_be_bytes(*cap);
    let decoder = if cap & 0x8000 != 0 {
        Decoder::new()
    } else {
        Decoder::with_max_message_len(usize::from(cap) * 2)
    };
    let all_at_once = whole(&decoder, stream);
    let in_pieces = cut_everywhere(&decoder, stream);
    assert_eq!(all_at_once, in_pieces, "framing depends on where the reads were cut");
});
