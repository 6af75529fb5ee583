//! `pg::connection` (being written: see the PostgreSQL client issue).
