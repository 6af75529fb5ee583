//! Which statements leave state in the server *session*, for clients behind
//! a transaction-pooling proxy ([`Config::transaction_pooling`]).
//!
//! Behind PgBouncer in `pool_mode = transaction`, a client owns a server
//! connection only for the length of one transaction. Whatever a statement
//! leaves in the session outlives that transaction on a connection the
//! proxy then gives to someone else, and the client's next transaction runs
//! on another connection without it. PgBouncer's documentation lists the
//! features this breaks; these are the ones a statement's first words give
//! away:
//!
//! | statement | what stays behind | instead |
//! |---|---|---|
//! | `SET name …` (not `SET LOCAL`) | the setting, for the next client | `SET LOCAL` inside `BEGIN … COMMIT` |
//! | `PREPARE` | a named statement the next transaction cannot find | the protocol's unnamed statement |
//! | `LISTEN` | a subscription on a connection we will not read | a direct connection for notifications |
//! | `pg_advisory_lock(…)` and friends | a lock no transaction end releases | `pg_advisory_xact_lock(…)` |
//! | `DECLARE … WITH HOLD` | a cursor that outlives the transaction | a cursor inside one transaction |
//! | `CREATE TEMP TABLE` (without `ON COMMIT DROP`) | a table only one server connection sees | `ON COMMIT DROP` |
//!
//! Simplification: this is a scan of the statement's words, not a SQL
//! parser. Quoted text ('…', "…") and comments are skipped; dollar-quoted
//! bodies and `set_config(name, value, false)` are not recognised. It
//! catches the mistakes people make, not every way to make them.
//!
//! [`Config::transaction_pooling`]: crate::pg::Config::transaction_pooling

use std::fmt;

/// A statement refused because it would leave state in the server session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionState {
    /// What it would leave behind (`SET`, `LISTEN`, ...).
    pub what: &'static str,
    /// The statement's first words, for the message.
    pub statement: String,
    /// What to write instead.
    pub instead: &'static str,
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "refused `{}`: {} outlives the transaction, and behind transaction pooling the next \
             transaction may run on another server connection while this one serves another client; {}",
            self.statement, self.what, self.instead
        )
    }
}

/// How many characters of the statement the error message quotes.
const QUOTED_CHARS: usize = 60;

/// The first statement in `sql` that would leave session state, if any.
pub fn find(sql: &str) -> Option<SessionState> {
    statements(sql).into_iter().find_map(|code| classify(&code))
}

fn classify(code: &str) -> Option<SessionState> {
    let lower = code.to_ascii_lowercase();
    // Punctuation separates words too: `SET x=1` reads as `SET x = 1`.
    let words: Vec<&str> = lower
        .split(|c: char| c.is_whitespace() || "(),=".contains(c))
        .filter(|word| !word.is_empty())
        .take(4)
        .collect();
    let refuse = |what, instead| {
        let statement: String = code.split_whitespace().collect::<Vec<_>>().join(" ");
        let statement = match statement.char_indices().nth(QUOTED_CHARS) {
            Some((cut, _)) => format!("{}…", &statement[..cut]),
            None => statement,
        };
        Some(SessionState {
            what,
            statement,
            instead,
        })
    };
    // ANCHOR: classify
    match words.as_slice() {
        ["set", "local" | "transaction" | "constraints", ..] => {}
        ["set", ..] => return refuse("a session setting", "use SET LOCAL inside BEGIN … COMMIT"),
        ["prepare", "transaction", ..] => {}
        ["prepare", ..] => {
            return refuse(
                "a named prepared statement",
                "use the protocol's unnamed statements (query with parameters)",
            )
        }
        ["listen", ..] => {
            return refuse(
                "a LISTEN subscription",
                "open a direct connection to the server for notifications",
            )
        }
        ["declare", ..] if lower.contains(" with hold") => {
            return refuse("a WITH HOLD cursor", "use a cursor inside one transaction")
        }
        ["create", "temp" | "temporary", ..] | ["create", "local" | "global", "temp" | "temporary", ..]
            if !lower.contains("on commit drop") =>
        {
            return refuse(
                "a temporary table",
                "add ON COMMIT DROP and use it inside one transaction",
            )
        }
        _ => {}
    }
    // ANCHOR_END: classify
    // Session advisory locks can hide in any expression; the transaction
    // forms (`pg_advisory_xact_lock`) do not contain these names.
    let advisory = ["pg_advisory_lock", "pg_try_advisory_lock", "pg_advisory_unlock"];
    if advisory.iter().any(|name| lower.contains(name)) {
        return refuse(
            "a session advisory lock",
            "use pg_advisory_xact_lock inside a transaction, released at its end",
        );
    }
    None
}

/// Split `sql` at top-level `;`, with quoted text and comments blanked out
/// so that their words are never mistaken for keywords.
fn statements(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ';' => out.push(std::mem::take(&mut current)),
            '\'' | '"' => {
                // A doubled quote inside is an escaped quote: the loop
                // closes and reopens the literal, which blanks the same.
                for inner in chars.by_ref() {
                    if inner == c {
                        break;
                    }
                }
                current.push(' ');
            }
            '-' if chars.peek() == Some(&'-') => {
                for inner in chars.by_ref() {
                    if inner == '\n' {
                        break;
                    }
                }
                current.push(' ');
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut last = ' ';
                for inner in chars.by_ref() {
                    if last == '*' && inner == '/' {
                        break;
                    }
                    last = inner;
                }
                current.push(' ');
            }
            _ => current.push(c),
        }
    }
    out.push(current);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn refused(sql: &str) -> Option<&'static str> {
        find(sql).map(|s| s.what)
    }

    #[test]
    fn session_statements_are_refused() {
        for sql in [
            "SET statement_timeout = 0",
            "set search_path to x",
            "SET SESSION timezone = 'UTC'",
            "PREPARE q AS SELECT 1",
            "LISTEN events",
            "SELECT pg_advisory_lock(42)",
            "select pg_try_advisory_lock(1, 2)",
            "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
            "CREATE TEMP TABLE t (x int)",
            "BEGIN; SET work_mem = '64MB'; COMMIT",
            "  /* hi */ -- there\n  SET x.y = 1",
        ] {
            assert!(refused(sql).is_some(), "{sql:?} should be refused");
        }
    }

    #[test]
    fn transaction_scoped_statements_pass() {
        for sql in [
            "SET LOCAL statement_timeout = 0",
            "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
            "SELECT pg_advisory_xact_lock(42)",
            "SELECT 'SET x = 1; LISTEN y'",
            "SELECT 1 -- LISTEN y",
            "CREATE TEMP TABLE t (x int) ON COMMIT DROP",
            "UNLISTEN *",
            "PREPARE TRANSACTION 'x'",
            "SELECT \"set\" FROM t",
            "",
        ] {
            assert_eq!(refused(sql), None, "{sql:?} should pass");
        }
    }

    #[test]
    fn the_message_names_the_statement_and_the_alternative() {
        let text = find("SET   statement_timeout\n= 0").unwrap().to_string();
        assert!(text.contains("`SET statement_timeout = 0`"), "{text}");
        assert!(text.contains("SET LOCAL"), "{text}");
    }

    proptest! {
        #[test]
        fn any_text_is_classified_without_panicking(sql in "\\PC{0,200}") {
            let _ = find(&sql);
        }

        #[test]
        fn quoted_keywords_never_count(word in "(SET|LISTEN|PREPARE) [a-z]{1,8}") {
            prop_assert_eq!(refused(&format!("SELECT '{word}'")), None);
        }
    }
}
