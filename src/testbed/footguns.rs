//! `testbed::footguns`: the ways session state breaks behind transaction
//! pooling (Q30), as scenarios that make each one happen: the story's four
//! (`SET`, `PREPARE`, `LISTEN`, advisory locks) and a fifth a driver adds
//! itself, a statement cache.
//!
//! Each scenario runs two clients, A and B, through a PgBouncer in
//! `pool_mode = transaction` with at least two server connections, plus a
//! direct connection to PostgreSQL as the referee. Every statement asks
//! for `pg_backend_pid()` in the same transaction, so the record shows
//! which *server* connection served which client at each step: the whole
//! footgun is that this pid changes under a client, and that a client's
//! session state stays with the pid, not with the client.
//!
//! The order of steps is arranged with PgBouncer's documented reuse order:
//! an idle server connection is reused last-in, first-out
//! (`server_round_robin = 0`, the default). So B, starting a transaction
//! right after A's, gets the server connection A just left; and while B
//! holds it, A's next transaction must take another.
//!
//! With `transaction_pooling` set in the clients' [`Config`], connlab's
//! client avoids each footgun: it refuses the statement that would leave
//! state behind ([`Error::SessionState`]), parses a prepared statement's
//! unnamed form again in every execution's batch, and keeps its
//! statement cache off.

use std::fmt;

use crate::pg::connection::{Error, Statement};
use crate::pg::{Config, Connection};

/// One statement, who sent it, which server connection ran it, and what
/// came back.
#[derive(Debug, Clone)]
pub struct Step {
    /// `A`, `B`, or `direct` (the referee, straight to PostgreSQL).
    pub client: &'static str,
    /// The statement, as sent.
    pub sql: String,
    /// The server process that ran it (`pg_backend_pid()`), when known.
    pub server_pid: Option<i32>,
    /// The answer, or the error.
    pub result: String,
}

/// A scenario's record.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its title (`SET seen by another client`).
    pub title: &'static str,
    /// What was done, in order.
    pub steps: Vec<Step>,
    /// Did the footgun go off (state lost or leaked)?
    pub went_off: bool,
    /// One sentence: why, from the connections' point of view.
    pub why: String,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.title)?;
        for step in &self.steps {
            let pid = step.server_pid.map_or_else(|| "-".to_string(), |pid| pid.to_string());
            writeln!(
                f,
                "  {:<6} server pid {:>7}  {:<58} → {}",
                step.client, pid, step.sql, step.result
            )?;
        }
        let verdict = if self.went_off { "WENT OFF" } else { "avoided" };
        writeln!(f, "  {verdict}: {}", self.why)
    }
}

/// The five scenarios in order. `bouncer` is the client configuration
/// through PgBouncer (its `transaction_pooling` flag decides whether
/// connlab guards the session), `direct` goes straight to PostgreSQL.
///
/// The first four run with the statement cache off, so that each shows its
/// own footgun and not the cache's, which is the fifth.
pub async fn all(bouncer: &Config, direct: &Config) -> Result<Vec<Outcome>, Error> {
    let uncached = without_cache(bouncer);
    Ok(vec![
        set_leaks(&uncached).await?,
        prepared_vanishes(&uncached).await?,
        listen_goes_deaf(&uncached, direct).await?,
        advisory_lock_stays(&uncached, direct).await?,
        cached_names_collide(bouncer).await?,
    ])
}

/// `config` with the statement cache off.
pub fn without_cache(config: &Config) -> Config {
    Config {
        statement_cache_size: 0,
        ..config.clone()
    }
}

/// A record being written.
struct Script {
    steps: Vec<Step>,
}

impl Script {
    /// Run `sql` in one implicit transaction together with
    /// `SELECT pg_backend_pid()` (one Sync: the same server connection),
    /// and record it. Returns the statement's first column as text.
    async fn run(&mut self, client: &'static str, conn: &mut Connection, sql: &str) -> Result<Option<String>, Error> {
        let pid_sql = "SELECT pg_backend_pid()";
        let outcome = conn.pipeline(&[(sql, &[]), (pid_sql, &[])]).await;
        let (result, pid, value) = match outcome {
            Ok(mut results) => {
                let pid = results
                    .pop()
                    .and_then(|r| r.ok())
                    .and_then(|rows| rows.get(0)?.get::<i32>(0).ok());
                match results.pop() {
                    Some(Ok(rows)) => {
                        let value = rows.get(0).and_then(|row| row.get::<Option<String>>(0).ok().flatten());
                        (value.clone().unwrap_or_else(|| rows.tag().to_string()), pid, value)
                    }
                    Some(Err(e)) => (e.to_string(), pid, None),
                    None => ("(no result)".to_string(), pid, None),
                }
            }
            Err(Error::SessionState(refused)) => (format!("refused by connlab: {}", refused.what), None, None),
            Err(e) => return Err(e),
        };
        self.record(client, sql, pid, result);
        Ok(value)
    }

    fn record(&mut self, client: &'static str, sql: &str, server_pid: Option<i32>, result: String) {
        self.steps.push(Step {
            client,
            sql: sql.to_string(),
            server_pid,
            result,
        });
    }

    fn done(self, title: &'static str, went_off: bool, why: String) -> Outcome {
        Outcome {
            title,
            steps: self.steps,
            went_off,
            why,
        }
    }
}

/// B opens a transaction and learns which server connection it holds.
async fn hold(script: &mut Script, b: &mut Connection) -> Result<(), Error> {
    b.simple_query("BEGIN").await?;
    let pid = b.query("SELECT pg_backend_pid()", &[]).await?;
    let pid = pid.get(0).and_then(|row| row.get::<i32>(0).ok());
    script.record(
        "B",
        "BEGIN; SELECT pg_backend_pid()",
        pid,
        "holds this server connection".into(),
    );
    Ok(())
}

/// Footgun 1: A's `SET` stays on the server connection; B gets it.
pub async fn set_leaks(bouncer: &Config) -> Result<Outcome, Error> {
    let mut script = Script { steps: Vec::new() };
    let mut a = Connection::connect(bouncer).await?;
    let mut b = Connection::connect(bouncer).await?;
    script.run("A", &mut a, "SET statement_timeout = '4321ms'").await?;
    let seen = script
        .run("B", &mut b, "SELECT current_setting('statement_timeout')")
        .await?
        .unwrap_or_default();
    let went_off = seen == "4321ms";
    let why = if went_off {
        "A's SET stayed on the server connection after A's transaction; PgBouncer gave that connection to B".to_string()
    } else {
        format!("B sees statement_timeout = {seen}: A's SET never reached a server connection")
    };
    // Put the shared server connection back as it was, for whoever is next.
    // Ignored: under the guard this is refused, and there is nothing to undo.
    let _ = b.simple_query("RESET statement_timeout").await;
    Ok(script.done("footgun 1: SET seen by another client", went_off, why))
}

/// Footgun 2: a named prepared statement is not on the next server
/// connection.
pub async fn prepared_vanishes(bouncer: &Config) -> Result<Outcome, Error> {
    let mut script = Script { steps: Vec::new() };
    let mut a = Connection::connect(bouncer).await?;
    let mut b = Connection::connect(bouncer).await?;
    let sql = "SELECT pg_backend_pid()";
    let statement: Statement = a.prepare(sql).await?;
    let shown = match statement.name() {
        "" => format!("prepare {sql:?} (unnamed)"),
        name => format!("prepare {sql:?} as {name:?}"),
    };
    script.record("A", &shown, None, "ParseComplete".into());
    hold(&mut script, &mut b).await?;
    let went_off = match a.query_prepared(&statement, &[]).await {
        Ok(rows) => {
            let pid = rows.get(0).and_then(|row| row.get::<i32>(0).ok());
            script.record("A", "execute it", pid, "1 row".into());
            false
        }
        Err(e) => {
            script.record("A", "execute it", None, e.to_string());
            e.code() == Some(INVALID_SQL_STATEMENT_NAME)
        }
    };
    b.simple_query("COMMIT").await?;
    let why = if went_off {
        "the name lives on the server connection that parsed it; A's next transaction ran on another".to_string()
    } else {
        "the unnamed statement was parsed again in the same batch as its execution, on whichever connection ran it"
            .to_string()
    };
    Ok(script.done("footgun 2: prepared statement \"does not exist\"", went_off, why))
}

/// Footgun 5: the client's own statement cache. Each client numbers its
/// cached statements from `s1`; behind transaction pooling two clients'
/// `s1` meet on one server connection.
pub async fn cached_names_collide(bouncer: &Config) -> Result<Outcome, Error> {
    let mut script = Script { steps: Vec::new() };
    let mut a = Connection::connect(bouncer).await?;
    let mut b = Connection::connect(bouncer).await?;
    let mut went_off = false;
    for (client, conn, sql) in [
        ("A", &mut a, "SELECT 'A''s query'"),
        ("B", &mut b, "SELECT 'B''s query'"),
    ] {
        match conn.query(sql, &[]).await {
            Ok(rows) => {
                let value = rows
                    .get(0)
                    .and_then(|row| row.get::<String>(0).ok())
                    .unwrap_or_default();
                script.record(client, sql, None, value);
            }
            Err(e) => {
                went_off |= e.code() == Some(DUPLICATE_PREPARED_STATEMENT);
                script.record(client, sql, None, e.to_string());
            }
        }
    }
    let pid = b.query("SELECT pg_backend_pid()", &[]).await.ok();
    let pid = pid.and_then(|rows| rows.get(0).and_then(|row| row.get::<i32>(0).ok()));
    script.record("B", "SELECT pg_backend_pid()", pid, "B's server connection now".into());
    let why = if went_off {
        "each client's cache names its first statement s1; A's s1 stayed on the server connection, which B got next"
            .to_string()
    } else {
        "no statement was named: the cache is off, every query parses the unnamed statement".to_string()
    };
    Ok(script.done(
        "footgun 5: the client's statement cache: \"s1\" already exists",
        went_off,
        why,
    ))
}

/// SQLSTATE 42P05, `duplicate_prepared_statement`.
pub const DUPLICATE_PREPARED_STATEMENT: &str = "42P05";

/// SQLSTATE 26000, `invalid_sql_statement_name`: "prepared statement … does not exist".
pub const INVALID_SQL_STATEMENT_NAME: &str = "26000";

/// Footgun 3: A's `LISTEN` stays on a server connection A no longer has;
/// the notification goes to whoever holds it.
pub async fn listen_goes_deaf(bouncer: &Config, direct: &Config) -> Result<Outcome, Error> {
    let mut script = Script { steps: Vec::new() };
    let mut a = Connection::connect(bouncer).await?;
    let mut b = Connection::connect(bouncer).await?;
    let mut referee = Connection::connect(direct).await?;
    script.run("A", &mut a, "LISTEN connlab_events").await?;
    hold(&mut script, &mut b).await?;
    a.start_wire_tap(false);
    b.start_wire_tap(false);
    script
        .run("direct", &mut referee, "NOTIFY connlab_events, 'hello'")
        .await?;
    script.run("A", &mut a, "SELECT 'anything for me?'").await?;
    b.simple_query("COMMIT").await?;
    let heard = |conn: &mut Connection| {
        conn.take_wire_tap()
            .iter()
            .filter(|r| r.name == "NotificationResponse")
            .count()
    };
    let (to_a, to_b) = (heard(&mut a), heard(&mut b));
    script.record("A", "(NotificationResponse received)", None, to_a.to_string());
    script.record("B", "(NotificationResponse received)", None, to_b.to_string());
    let listened = script.steps.first().is_some_and(|s| !s.result.starts_with("refused"));
    let went_off = listened && to_a == 0;
    let why = if went_off {
        format!(
            "the subscription belongs to the server connection A used for LISTEN; B held it when NOTIFY came, \
             so {} notification(s) went to B and none to A",
            to_b
        )
    } else {
        "A never subscribed through the proxy; notifications need a direct connection".to_string()
    };
    Ok(script.done("footgun 3: LISTEN stops receiving", went_off, why))
}

/// Footgun 4: a session advisory lock outlives A's transaction, and A's
/// unlock runs on a connection that does not hold it.
pub async fn advisory_lock_stays(bouncer: &Config, direct: &Config) -> Result<Outcome, Error> {
    let mut script = Script { steps: Vec::new() };
    let mut a = Connection::connect(bouncer).await?;
    let mut b = Connection::connect(bouncer).await?;
    let mut referee = Connection::connect(direct).await?;
    let held = "SELECT count(*)::text FROM pg_locks WHERE objid = 4242";
    script
        .run("A", &mut a, "SELECT 'locked' FROM pg_advisory_lock(4242)")
        .await?;
    hold(&mut script, &mut b).await?;
    script.run("A", &mut a, "SELECT pg_advisory_unlock(4242)::text").await?;
    b.simple_query("COMMIT").await?;
    let count = script.run("direct", &mut referee, held).await?.unwrap_or_default();
    let went_off = count != "0";
    let why = if went_off {
        "the lock belongs to the server connection that took it, which A no longer held; A's unlock ran on \
         another one (false), so the lock stays until that server connection closes"
            .to_string()
    } else {
        "no session lock was taken; pg_advisory_xact_lock ends with its transaction".to_string()
    };
    if went_off {
        // Release it where it lives: close every server connection of the
        // pool's role, as an operator would. Ignored result: best effort,
        // for the next scenario's sake.
        let _ = referee
            .simple_query("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")
            .await;
    }
    Ok(script.done("footgun 4: advisory lock held across transactions", went_off, why))
}
