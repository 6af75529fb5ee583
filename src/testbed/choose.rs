//! `testbed::choose`: which PostgreSQL an example talks to.
//!
//! An example must run on a fresh machine with no setup, and must also run
//! against the reader's own server when they name one. [`choose`] is that
//! rule, written once: a URL, else the libpq `PG*` variables, else a
//! throwaway [`Cluster`] started for this run.

use std::fmt;
use std::io;

use super::postgres::Cluster;

/// Where an example's server came from (see [`choose`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A URL the user gave (`--url` or `DATABASE_URL`).
    Url,
    /// The libpq-style `PG*` environment variables.
    Environment,
    /// A throwaway [`Cluster`] started for this run.
    Throwaway,
}

/// A server to talk to, and the cluster to keep alive while talking to it.
pub struct Chosen {
    /// How to connect.
    pub config: crate::pg::Config,
    /// Where `config` came from.
    pub source: Source,
    /// The throwaway cluster, when one was started: keep it alive for as
    /// long as the server is needed; dropping it stops and removes it.
    pub cluster: Option<Cluster>,
}

impl fmt::Display for Chosen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.source, &self.cluster) {
            (Source::Throwaway, Some(c)) => write!(
                f,
                "a throwaway PostgreSQL on 127.0.0.1:{} (started for this run, removed on exit)",
                c.port()
            ),
            (Source::Environment, _) => f.write_str("the server named by the PG* environment variables"),
            _ => f.write_str("the server named by --url / DATABASE_URL"),
        }
    }
}

/// The rule every example that needs PostgreSQL follows: `url` (the
/// example's `--url`), else `DATABASE_URL`,
/// else the `PG*` variables if any is set, else a throwaway [`Cluster`]
/// started now, so that a fresh machine needs no setup.
pub fn choose(url: Option<String>) -> io::Result<Chosen> {
    if let Some(url) = url.or_else(|| std::env::var("DATABASE_URL").ok()) {
        let config = crate::pg::Config::from_url(&url)?;
        return Ok(Chosen {
            config,
            source: Source::Url,
            cluster: None,
        });
    }
    const PG_VARS: [&str; 5] = ["PGHOST", "PGPORT", "PGUSER", "PGPASSWORD", "PGDATABASE"];
    if PG_VARS.iter().any(|v| std::env::var_os(v).is_some()) {
        return Ok(Chosen {
            config: crate::pg::Config::from_env()?,
            source: Source::Environment,
            cluster: None,
        });
    }
    let cluster = Cluster::start()?;
    Ok(Chosen {
        config: crate::pg::Config::from_url(&cluster.url())?,
        source: Source::Throwaway,
        cluster: Some(cluster),
    })
}
