//! `pg::auth` (being written: see the PostgreSQL client issue).
