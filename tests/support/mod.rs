//! Shared test support. Each test binary that needs it says `mod support;`
//! and uses the parts it needs.
//!
//! - [`fake_pg`]: a small fake PostgreSQL server, for what no real server
//!   will do (a forged SCRAM signature, a malformed or endless message).

#![allow(dead_code)] // each test binary uses a different subset

pub mod fake_pg;

use std::future::Future;
use std::time::Duration;

use connlab::poller::Backend;
use connlab::reactor;

/// Every test body gets this long before it is declared hung.
pub const HANG: Duration = Duration::from_secs(20);

/// Run `body` to completion on each backend's reactor, failing on a hang.
pub fn on_every_backend<F, Fut>(body: F)
where
    F: Fn(Backend) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in Backend::ALL {
        reactor::block_on(backend, async {
            reactor::timeout(HANG, body(backend))
                .await
                .unwrap_or_else(|_| panic!("{backend:?}: test hung for {HANG:?}"))
        })
        .unwrap();
    }
}
