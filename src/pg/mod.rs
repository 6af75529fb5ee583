//! `pg`: a minimal PostgreSQL client (filled in by the pg work).
