//! What the kernel will tell us about an fd: `fstat(2)`, `getsockopt(2)` with
//! `TCP_INFO` (`tcp(7)`), `SO_RCVBUF`/`SO_SNDBUF` (`socket(7)`), and
//! `ioctl(SIOCINQ/SIOCOUTQ)` for queued bytes.
//!
//! (Filled in by the `inspect` work.)
