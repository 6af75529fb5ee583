//! The HTTP request framing (`http::parse_head`), fed a byte stream the way
//! a socket delivers it: whole, and cut at every possible boundary.
//!
//! Input: two bytes choosing the limits (small ones, so that 431 and 413
//! fire, as well as the defaults), then the stream: pipelined requests, as
//! a client may send them. For each cut point the harness frames whatever
//! whole requests the bytes so far hold (head, then `Content-Length` bytes
//! of body), as the server's read loop does after every `read(2)`. It
//! checks what a framing bug would break:
//!
//! - no panic, whatever the bytes (libFuzzer reports one as a crash);
//! - a head never claims more bytes than it was given, nor zero, nor more
//!   than the head limit;
//! - the stream cut in pieces frames exactly as the whole stream does: the
//!   same request lengths, and a refusal at the same request (a server
//!   whose framing depended on how the kernel split the reads would answer
//!   one client differently from the next). Which status a refusal carries
//!   may differ (a head still incomplete past the limit is a 431 in pieces
//!   even where the whole stream shows a malformed byte further on), so
//!   only the fact of refusing is compared.
#![no_main]

use connlab::http::{parse_head, Limits};
use libfuzzer_sys::fuzz_target;

/// What one pass over the stream saw: each whole request's length (head
/// plus body), and whether it ended on a refusal.
#[derive(Debug, PartialEq)]
struct Framing {
    lengths: Vec<usize>,
    refused: bool,
}

/// Frame the first request in `buf`: `Ok(Some(n))` if it is all there.
fn frame(buf: &[u8], limits: &Limits) -> Result<Option<usize>, ()> {
    match parse_head(buf, limits) {
        Ok(Some((head, head_len))) => {
            assert!(
                head_len > 0 && head_len <= buf.len() && head_len <= limits.max_head_bytes,
                "head of {head_len} bytes in {} (limit {})",
                buf.len(),
                limits.max_head_bytes
            );
            assert!(head.content_length <= limits.max_body_bytes);
            let total = head_len + head.content_length;
            Ok((buf.len() >= total).then_some(total))
        }
        Ok(None) => Ok(None),
        Err(_) => Err(()),
    }
}

/// Take every whole request at the front of `buf` into `framing`, as the
/// server does after a read; the bytes taken.
fn take_whole(buf: &[u8], limits: &Limits, framing: &mut Framing) -> usize {
    let mut at = 0;
    while at < buf.len() && !framing.refused {
        match frame(&buf[at..], limits) {
            Ok(Some(n)) => {
                framing.lengths.push(n);
                at += n;
            }
            Ok(None) => break,
            Err(()) => framing.refused = true,
        }
    }
    at
}

/// Frame `stream` with all of it available from the start.
fn whole(stream: &[u8], limits: &Limits) -> Framing {
    let mut framing = Framing {
        lengths: Vec::new(),
        refused: false,
    };
    take_whole(stream, limits, &mut framing);
    framing
}

/// Frame `stream` as it arrives one byte more at a time.
fn cut_everywhere(stream: &[u8], limits: &Limits) -> Framing {
    let mut framing = Framing {
        lengths: Vec::new(),
        refused: false,
    };
    let mut at = 0;
    for end in 1..=stream.len() {
        if framing.refused {
            break;
        }
        at += take_whole(&stream[at..end], limits, &mut framing);
    }
    framing
}

fuzz_target!(|data: &[u8]| {
    let Some(([head_cap, other], stream)) = data.split_first_chunk::<2>().map(|(c, s)| (*c, s)) else {
        return;
    };
    // Top bit of the first byte: the defaults. Otherwise a head limit of
    // 16 to 2,048 bytes, 1 to 16 header fields and a body limit of 0 to
    // 1,024 bytes, so every refusal is within a short input's reach.
    let limits = if head_cap & 0x80 != 0 {
        Limits::default()
    } else {
        Limits {
            max_head_bytes: 16 * (usize::from(head_cap) + 1),
            max_headers: usize::from(other & 0x0f) + 1,
            max_body_bytes: 64 * usize::from(other >> 4),
            ..Limits::default()
        }
    };
    let all_at_once = whole(stream, &limits);
    let in_pieces = cut_everywhere(stream, &limits);
    assert_eq!(all_at_once, in_pieces, "framing depends on where the reads were cut");
});
