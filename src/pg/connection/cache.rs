//! The statement cache: SQL text → a named statement already parsed on
//! this connection's backend.
//!
//! Without it, every [`query`](super::Connection::query) sends Parse and
//! Describe again, and the backend parses, analyses and rewrites the same
//! text each time. With it, the first call of a given SQL sends
//! `Parse "s7"`, `Describe S "s7"` (to learn the parameter types and
//! result columns) and then Bind/Execute as usual, all in the same single
//! write; every later call sends only `Bind "s7"` + `Execute` + `Sync`.
//! Protocol §55.2.3, "Extended Query": a named statement lasts until the
//! session ends or a Close (or `DEALLOCATE`/`DISCARD ALL`) removes it.
//!
//! asyncpg, pgx and deadpool-postgres all keep such a cache; this one is a
//! plain map with a use counter. Bounded: when it is full, the least
//! recently used statement is evicted and its Close rides on the next
//! request (no extra round trip). A map plus a "last used" stamp means
//! eviction scans the map, which is O(capacity); we take that over a
//! linked list because eviction is rare next to lookups and a capacity of
//! about a hundred keeps the scan in the hundreds of nanoseconds.
//!
//! When not to use it (capacity 0 turns it off): behind PgBouncer in
//! transaction mode, where consecutive transactions may land on different
//! backends that never saw our Parse; and when teaching, to see the
//! unnamed-statement path.

use std::collections::HashMap;
use std::sync::Arc;

use super::rows::Column;
use crate::pg::protocol::Oid;

/// How many statements a connection keeps by default (asyncpg's default
/// too): enough for an application's hot queries, small enough that the
/// backend's memory for plans stays modest.
pub const DEFAULT_CAPACITY: usize = 100;

/// One cached statement, as the backend described it.
#[derive(Debug, Clone)]
pub(super) struct Cached {
    /// The server-side name (`s1`, `s2`, ...).
    pub name: Arc<str>,
    /// The parameter types we sent in Parse (zero for "infer"); a call with
    /// other types is a miss, because the backend fixed them at Parse.
    pub types: Vec<Oid>,
    /// The result columns from `Describe S`.
    pub columns: Arc<[Column]>,
    last_used: u64,
}

/// SQL text → cached statement, with least-recently-used eviction.
#[derive(Debug)]
pub(super) struct StatementCache {
    capacity: usize,
    entries: HashMap<String, Cached>,
    clock: u64,
    /// Names evicted or invalidated but not yet closed on the server.
    to_close: Vec<Arc<str>>,
}

impl StatementCache {
    pub fn new(capacity: usize) -> StatementCache {
        StatementCache {
            capacity,
            entries: HashMap::new(),
            clock: 0,
            to_close: Vec::new(),
        }
    }

    /// Whether the cache is on (a capacity above zero).
    pub fn enabled(&self) -> bool {
        self.capacity > 0
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// The statement for `sql` parsed with these parameter types, marked as
    /// just used.
    pub fn get(&mut self, sql: &str, types: &[Oid]) -> Option<&Cached> {
        self.clock += 1;
        let clock = self.clock;
        let entry = self.entries.get_mut(sql).filter(|e| e.types == types)?;
        entry.last_used = clock;
        Some(entry)
    }

    /// Remember a statement the backend has parsed. A previous entry for
    /// the same SQL (parsed with other types) and, when full, the least
    /// recently used entry are queued for Close.
    pub fn insert(&mut self, sql: &str, name: Arc<str>, types: Vec<Oid>, columns: Arc<[Column]>) {
        if !self.enabled() {
            self.to_close.push(name);
            return;
        }
        self.clock += 1;
        let entry = Cached {
            name,
            types,
            columns,
            last_used: self.clock,
        };
        if let Some(old) = self.entries.insert(sql.to_string(), entry) {
            self.to_close.push(old.name);
        }
        while self.entries.len() > self.capacity {
            let Some(victim) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = self.entries.remove(&victim) {
                crate::narrate!("statement cache full: evict {:?}", old.name);
                self.to_close.push(old.name);
            }
        }
    }

    /// Forget `sql`'s statement because the server said it is stale (its
    /// plan's result type changed, or it no longer exists); it is closed
    /// on the next request and parsed again under a new name.
    pub fn invalidate(&mut self, sql: &str) {
        if let Some(old) = self.entries.remove(sql) {
            crate::narrate!("statement cache: {:?} is stale, forget it", old.name);
            self.to_close.push(old.name);
        }
    }

    /// Forget everything without closing: the server already dropped every
    /// statement (`DISCARD ALL`, `DEALLOCATE ALL`).
    pub fn forget_all(&mut self) {
        self.entries.clear();
        self.to_close.clear();
    }

    /// Take the names waiting for a Close.
    pub fn take_to_close(&mut self) -> Vec<Arc<str>> {
        std::mem::take(&mut self.to_close)
    }

    /// Put back names whose Close the server skipped (an error earlier in
    /// the same batch discards everything up to the Sync).
    pub fn retry_close(&mut self, names: Vec<Arc<str>>) {
        self.to_close.extend(names);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cols() -> Arc<[Column]> {
        Arc::from([])
    }

    #[test]
    fn a_hit_needs_the_same_sql_and_the_same_types() {
        let mut cache = StatementCache::new(4);
        cache.insert("SELECT $1", Arc::from("s1"), vec![23], cols());
        assert_eq!(cache.get("SELECT $1", &[23]).map(|c| &*c.name), Some("s1"));
        assert!(
            cache.get("SELECT $1", &[25]).is_none(),
            "other parameter types are a miss"
        );
        assert!(cache.get("SELECT $2", &[23]).is_none());
    }

    #[test]
    fn the_least_recently_used_statement_is_evicted_and_queued_for_close() {
        let mut cache = StatementCache::new(2);
        cache.insert("a", Arc::from("s1"), vec![], cols());
        cache.insert("b", Arc::from("s2"), vec![], cols());
        assert!(cache.get("a", &[]).is_some()); // "b" is now the oldest
        cache.insert("c", Arc::from("s3"), vec![], cols());
        assert_eq!(cache.len(), 2);
        assert!(cache.get("b", &[]).is_none());
        assert_eq!(cache.take_to_close(), vec![Arc::<str>::from("s2")]);
        assert!(cache.take_to_close().is_empty());
    }

    #[test]
    fn reparsing_with_new_types_closes_the_old_statement() {
        let mut cache = StatementCache::new(4);
        cache.insert("q", Arc::from("s1"), vec![23], cols());
        cache.insert("q", Arc::from("s2"), vec![20], cols());
        assert_eq!(cache.take_to_close(), vec![Arc::<str>::from("s1")]);
    }

    #[test]
    fn invalidated_statements_are_closed_and_forget_all_closes_nothing() {
        let mut cache = StatementCache::new(4);
        cache.insert("q", Arc::from("s1"), vec![], cols());
        cache.invalidate("q");
        assert!(cache.get("q", &[]).is_none());
        assert_eq!(cache.take_to_close().len(), 1);
        cache.insert("r", Arc::from("s2"), vec![], cols());
        cache.invalidate("r");
        cache.forget_all();
        assert!(cache.take_to_close().is_empty(), "the server already dropped them");
    }

    #[test]
    fn capacity_zero_caches_nothing() {
        let mut cache = StatementCache::new(0);
        assert!(!cache.enabled());
        cache.insert("q", Arc::from("s1"), vec![], cols());
        assert!(cache.get("q", &[]).is_none());
    }
}
