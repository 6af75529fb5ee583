//! Placeholder: the wait_scaling benchmark is being written (see the issues).
fn main() {}
