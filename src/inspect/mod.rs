//! `inspect`: from an fd to the kernel's view of it (filled in by the inspect work).
