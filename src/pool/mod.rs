//! `pool`: the connection pool (filled in by the pool work).
