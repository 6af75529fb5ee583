//! `pg::config` (being written: see the PostgreSQL client issue).
