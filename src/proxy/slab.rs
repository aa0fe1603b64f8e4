//! A generational slab of a shard's connections: O(1) insert, lookup and removal by
//! [`ConnKey`], and a reused slot never answers to an old key.

use crate::proxy::ids::ConnKey;

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Connections of one kind on one shard, by [`ConnKey`].
#[derive(Debug)]
pub struct ConnectionSlab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

impl<T> Default for ConnectionSlab<T> {
    fn default() -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> ConnectionSlab<T> {
    /// Reserve a key, then store the value built from it.
    pub fn insert_with(&mut self, make: impl FnOnce(ConnKey) -> T) -> ConnKey {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            let key = ConnKey {
                index,
                generation: slot.generation,
            };
            slot.value = Some(make(key));
            return key;
        }
        let index = u32::try_from(self.slots.len()).expect("fewer than 2^32 connections per shard");
        let key = ConnKey {
            index,
            generation: 0,
        };
        self.slots.push(Slot {
            generation: 0,
            value: Some(make(key)),
        });
        key
    }

    /// The value under `key`, or `None` once it has been removed (even if the slot is reused).
    pub fn get(&self, key: ConnKey) -> Option<&T> {
        let slot = self.slots.get(key.index as usize)?;
        if slot.generation == key.generation {
            slot.value.as_ref()
        } else {
            None
        }
    }

    /// Take out the value under `key`, freeing its slot; `None` for a stale or removed key.
    pub fn remove(&mut self, key: ConnKey) -> Option<T> {
        let slot = self.slots.get_mut(key.index as usize)?;
        if slot.generation != key.generation {
            return None;
        }
        let value = slot.value.take()?;
        self.free.push(key.index);
        self.len -= 1;
        Some(value)
    }

    /// How many values are stored.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether no value is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every stored value, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.slots.iter().filter_map(|s| s.value.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_after_reuse() {
        let mut slab = ConnectionSlab::default();
        let a = slab.insert_with(|_| "a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert_with(|_| "b");
        assert_eq!(a.index, b.index, "slot reused");
        assert_eq!(slab.get(a), None);
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.get(b), Some(&"b"));
        assert_eq!(slab.len(), 1);
    }
}
