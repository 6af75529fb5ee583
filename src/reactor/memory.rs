//! What a connection costs the reactor: the read scratch buffer (one 64 KiB
//! buffer per reactor thread that every connection reads into, so that an
//! idle connection owns no buffer at all), and [`bookkeeping`], the sizes of
//! the records the reactor keeps for each connection.
//!
//! Why it exists (Q26, "what does a connection cost?"): a server that gives
//! each connection its own 64 KiB read buffer pays 64 KiB per connection
//! even while the connection sleeps; at 19,000 idle connections that is
//! over a gigabyte of memory holding nothing. But only the connection
//! being served *right now* needs somewhere to put its bytes, and on a
//! single-threaded reactor that is one connection at a time. So reads go
//! into this shared buffer, the server handles the bytes at once (an echo
//! writes them straight back), and copies into a buffer of the
//! connection's own only the bytes it could not finish with: for an echo,
//! what a `write` could not send. `docs/c10k.md` measures the difference.
//!
//! The classic references make the same split in different ways. Redis
//! gives each `client` a query buffer that starts empty and is freed when
//! idle; nginx allocates a connection's buffers lazily, when its first
//! bytes arrive, and frees them on keep-alive. mio's echo example keeps a
//! small growing `Vec` per connection; tokio's echo keeps a fixed array in
//! every task, which is why its idle cost tracks the array's size.
//!
//! Why per *thread* rather than a field of the reactor: one reactor runs
//! per thread, so the two are the same scope, and a `thread_local!` keeps
//! the reactor's own loop untouched. Alternative not taken: a buffer pool
//! shared between threads (a lock or atomics on every read, for nothing:
//! no two threads read into the same buffer).
//!
//! The rule that makes sharing safe is in the type: [`with_scratch`] lends
//! the buffer to a *closure*, which cannot `.await`, so no task can hold it
//! across a suspension point while another task reads into it.

use std::cell::Cell;
use std::mem::size_of;

use super::executor::{Task, TaskWaker};
use super::io::Source;

/// The bytes the reactor itself keeps for one connection that has one task
/// and one socket, before counting the task's own future (whose size is the
/// caller's: `size_of_val` of the future you spawn).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bookkeeping {
    /// The socket's record in the source slab: fd, readiness bits, the two
    /// wakers of the tasks waiting on it.
    pub source: usize,
    /// The task's record in the task slab: the boxed future's pointer, its
    /// waker, a generation.
    pub task: usize,
    /// The task's waker state, its own `Arc` allocation (counts included).
    pub waker: usize,
}

impl Bookkeeping {
    /// All three together.
    pub const fn total(&self) -> usize {
        self.source + self.task + self.waker
    }
}

/// `size_of` of the reactor's per-connection records; see [`Bookkeeping`].
/// Slab slots are `Vec` elements, so this is their exact size; a heap
/// allocation (the waker's `Arc`, the boxed future) also costs malloc's
/// header and rounding, which only a measurement of the process shows.
pub fn bookkeeping() -> Bookkeeping {
    Bookkeeping {
        source: size_of::<Source>(),
        task: size_of::<Task>(),
        // An Arc's allocation holds the strong and weak counts beside the value.
        waker: size_of::<TaskWaker>() + 2 * size_of::<usize>(),
    }
}

/// Bytes in the scratch buffer: one `read` of this size drains a loopback
/// socket's usual receive queue in one call.
pub const SCRATCH_SIZE: usize = 64 * 1024;

thread_local! {
    /// `None` until first used, and while lent out.
    static SCRATCH: Cell<Option<Box<[u8]>>> = const { Cell::new(None) };
}

/// Lend this thread's scratch buffer ([`SCRATCH_SIZE`] bytes) to `f`.
///
/// The bytes inside are whatever the last borrower left: read into it
/// before looking. Copy out anything you need after `f` returns; the next
/// borrower overwrites it. Allocated on first use and kept for the thread's
/// life (64 KiB per reactor thread, however many connections).
///
/// A nested call (an `f` that calls `with_scratch` again) gets a fresh
/// buffer of its own rather than a panic; that costs one allocation and
/// never happens in connlab's own loops.
pub fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> R) -> R {
    // ANCHOR: with_scratch
    let mut buf = SCRATCH
        .with(Cell::take)
        .unwrap_or_else(|| vec![0u8; SCRATCH_SIZE].into_boxed_slice());
    let out = f(&mut buf);
    SCRATCH.with(|slot| slot.set(Some(buf)));
    out
    // ANCHOR_END: with_scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_buffer_is_lent_each_time() {
        let first = with_scratch(|buf| {
            buf[0] = 7;
            buf.as_ptr() as usize
        });
        let (second, kept) = with_scratch(|buf| (buf.as_ptr() as usize, buf[0]));
        assert_eq!(first, second);
        assert_eq!(kept, 7);
    }

    #[test]
    fn a_nested_borrow_gets_its_own_buffer() {
        with_scratch(|outer| {
            let inner = with_scratch(|inner| inner.as_ptr() as usize);
            assert_ne!(inner, outer.as_ptr() as usize);
            assert_eq!(outer.len(), SCRATCH_SIZE);
        });
    }
}
