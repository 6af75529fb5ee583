//! Placeholder: the pool benchmark is being written (see the issues).
fn main() {}
