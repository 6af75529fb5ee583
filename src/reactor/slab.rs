//! A slab: a `Vec` whose slots are reused, so a task or an I/O source gets
//! a small integer key that stays valid until it is removed.
//!
//! The key is what travels through the kernel as the poller's [`Token`]
//! (for I/O sources) and inside each task's waker (for tasks). Freed slots
//! form a linked list threaded through the vacant entries, so insert and
//! remove are O(1) and the hot loop allocates nothing once warm.
//!
//! Alternative not taken: a `HashMap<u64, T>` with ever-growing ids. It
//! never reuses a key (no stale-key worries) but hashes on every event.
//!
//! [`Token`]: crate::poller::Token

pub(crate) struct Slab<T> {
    entries: Vec<Entry<T>>,
    /// Head of the free list; `entries.len()` when no slot is free.
    next_free: usize,
    len: usize,
}

enum Entry<T> {
    Occupied(T),
    /// A free slot holding the index of the next free slot.
    Vacant(usize),
}

impl<T> Slab<T> {
    pub(crate) const fn new() -> Slab<T> {
        Slab {
            entries: Vec::new(),
            next_free: 0,
            len: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Store the value `make(key)` builds and return its key. The value
    /// learns its own key first because a task's waker must carry it.
    pub(crate) fn insert_with(&mut self, make: impl FnOnce(usize) -> T) -> usize {
        let key = self.next_free;
        let value = make(key);
        if key == self.entries.len() {
            self.entries.push(Entry::Occupied(value));
            self.next_free = self.entries.len();
        } else {
            match std::mem::replace(&mut self.entries[key], Entry::Occupied(value)) {
                Entry::Vacant(next) => self.next_free = next,
                Entry::Occupied(_) => unreachable!("the free list only links vacant slots"),
            }
        }
        self.len += 1;
        key
    }

    pub(crate) fn get(&self, key: usize) -> Option<&T> {
        match self.entries.get(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn get_mut(&mut self, key: usize) -> Option<&mut T> {
        match self.entries.get_mut(key) {
            Some(Entry::Occupied(value)) => Some(value),
            _ => None,
        }
    }

    pub(crate) fn remove(&mut self, key: usize) -> Option<T> {
        let entry = self.entries.get_mut(key)?;
        if matches!(entry, Entry::Vacant(_)) {
            return None;
        }
        let Entry::Occupied(value) = std::mem::replace(entry, Entry::Vacant(self.next_free)) else {
            unreachable!("checked occupied just above")
        };
        self.next_free = key;
        self.len -= 1;
        Some(value)
    }

    /// Take every value out, leaving the slab empty.
    pub(crate) fn drain(&mut self) -> Vec<T> {
        let mut out = Vec::with_capacity(self.len);
        for entry in self.entries.drain(..) {
            if let Entry::Occupied(value) = entry {
                out.push(value);
            }
        }
        self.next_free = 0;
        self.len = 0;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn freed_keys_are_reused_last_in_first_out() {
        let mut slab = Slab::new();
        let a = slab.insert_with(|k| k * 10);
        let b = slab.insert_with(|k| k * 10);
        assert_eq!((a, b), (0, 1));
        assert_eq!(slab.get(b), Some(&10));
        assert_eq!(slab.remove(a), Some(0));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.insert_with(|k| k + 100), 0);
        assert_eq!(slab.get(0), Some(&100));
        assert_eq!(slab.len(), 2);
        assert_eq!(slab.drain().len(), 2);
        assert_eq!(slab.len(), 0);
        assert_eq!(slab.insert_with(|k| k), 0);
    }
}
