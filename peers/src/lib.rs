//! connlab's peers for side-by-side measurement (mio, tokio, tokio-postgres,
//! deadpool). This crate is a workspace member but not a default member, so
//! `cargo test` at the root never builds it. Run it with
//! `cargo run --release -p connlab-peers --bin <comparison>`.
