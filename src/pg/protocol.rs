//! `pg::protocol` (being written: see the PostgreSQL client issue).
