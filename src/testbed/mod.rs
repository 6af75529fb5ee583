//! `testbed`: the real engines that examples, tests and benches start for
//! themselves, and throw away afterwards.
//!
//! connlab shows connections on real servers, never on mocks of them. This
//! module is not part of the client: it sits at the top of the stack, uses
//! `pg` only to hand out a [`Config`](crate::pg::Config), and owns the
//! process plumbing that a DBA would otherwise do by hand.
//!
//! - [`process`]: what every engine needs: a free port, a private temp
//!   directory, an unprivileged account when run as root, and the watchdog
//!   that cleans up even after `SIGKILL`.
//! - [`postgres`]: a throwaway PostgreSQL cluster (`initdb`, `postgres`,
//!   `pg_ctl`) with one login per authentication method.
//! - [`certs`]: a CA and a server certificate made per run, for a cluster
//!   with TLS on.
//! - [`pgbouncer`]: a throwaway PgBouncer in front of that cluster, in
//!   session or transaction pooling mode.
//! - [`footguns`]: the four ways session state breaks behind transaction
//!   pooling, as scenarios that make each happen (and connlab's guard).
//! - [`haproxy`]: a throwaway HAProxy load balancer in front of
//!   [`backend`]s (connlab's own echo or HTTP server, killable), TCP or
//!   HTTP mode.
//! - [`choose`](mod@choose): the rule an example follows to find its server.
//!
//! The binaries are the distribution's (Debian packages installed by
//! `scripts/setup`), the same software a production deployment runs.

pub mod backend;
pub mod certs;
pub mod choose;
pub mod footguns;
pub mod haproxy;
pub mod pgbouncer;
pub mod postgres;
pub mod process;

pub use choose::choose;
pub use haproxy::HaProxy;
pub use pgbouncer::PgBouncer;
pub use postgres::Cluster;
