//! Sockets by raw syscalls: `socket(2)`, `bind(2)`, `listen(2)`, `accept4(2)`,
//! `connect(2)`, `shutdown(2)`, `read(2)`/`write(2)`, `getsockopt(2)` and
//! `setsockopt(2)`; see `socket(7)`, `tcp(7)`, `unix(7)`.
//!
//! (Filled in by the `net` work: each wrapper is one visible libc call.)
