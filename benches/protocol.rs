//! Placeholder: the protocol benchmark is being written (see the issues).
fn main() {}
