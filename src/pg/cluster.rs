//! `pg::cluster` (being written: see the PostgreSQL client issue).
