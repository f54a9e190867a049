//! The wheel itself: levels of slots over slab-linked lists (see the crate docs for its shape
//! and ground rules).

use std::num::NonZeroU32;

use slab::Slab;

/// Number of levels: 11 x 6 bits covers all 64 bits of a tick count.
pub const LEVELS: usize = 11;
const SLOT_BITS: u32 = 6;
const SLOTS: usize = 1 << SLOT_BITS;

/// Identifies an entry, to cancel it. Generational: once its entry has fired or been removed,
/// a key matches nothing, even when the slab slot holds a newer entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key {
    index: usize,
    generation: u64,
}

#[derive(Debug)]
struct Entry<T> {
    /// The wheel's insert count when this entry went in; its key carries the same number.
    generation: u64,
    deadline: u64,
    value: T,
    prev: Link,
    next: Link,
    /// Which list holds it: `(level, slot)`, or `None` for the expired list.
    place: Option<(u8, u8)>,
}

/// A slab index in 32 bits (index + 1, so that `None` is free): an entry is 48 bytes with a
/// waker, instead of 72 with two `Option<usize>`s, and a burst of timers touches less memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Index(NonZeroU32);

type Link = Option<Index>;

const _: () = assert!(std::mem::size_of::<Entry<std::task::Waker>>() == 48);

impl Index {
    fn new(i: usize) -> Index {
        u32::try_from(i + 1)
            .ok()
            .and_then(NonZeroU32::new)
            .map(Index)
            .expect("a wheel holds fewer than 2^32 - 1 timers")
    }

    fn get(self) -> usize {
        self.0.get() as usize - 1
    }
}

/// A doubly linked list of slab indices.
#[derive(Debug, Default, Clone, Copy)]
struct List {
    head: Link,
}

#[derive(Debug)]
struct Level {
    occupied: u64,
    slots: [List; SLOTS],
}

/// A hierarchical timing wheel holding values of type `T`.
///
/// ```
/// let mut wheel = timer::Wheel::new();
/// let a = wheel.insert(30, "a");
/// wheel.insert(10, "b");
/// assert_eq!(wheel.next_deadline(), Some(10));
/// wheel.remove(a);
/// let mut fired = Vec::new();
/// wheel.poll(100, |v| fired.push(v));
/// assert_eq!(fired, ["b"]);
/// ```
#[derive(Debug)]
pub struct Wheel<T> {
    entries: Slab<Entry<T>>,
    levels: Vec<Level>,
    expired: List,
    elapsed: u64,
    /// Entries inserted so far: the next entry's generation.
    inserted: u64,
}

impl<T> Default for Wheel<T> {
    fn default() -> Self {
        Wheel::new()
    }
}

/// Ticks spanned by one slot of `level`.
fn slot_range(level: usize) -> u128 {
    1u128 << (SLOT_BITS as usize * level)
}

/// Ticks spanned by a whole `level`.
fn level_range(level: usize) -> u128 {
    1u128 << (SLOT_BITS as usize * (level + 1))
}

fn level_for(elapsed: u64, deadline: u64) -> usize {
    let masked = (elapsed ^ deadline) | (SLOTS as u64 - 1);
    let significant = 63 - masked.leading_zeros() as usize;
    significant / SLOT_BITS as usize
}

fn slot_for(deadline: u64, level: usize) -> usize {
    ((deadline as u128 >> (SLOT_BITS as usize * level)) as usize) & (SLOTS - 1)
}

impl<T> Wheel<T> {
    /// An empty wheel at tick 0.
    pub fn new() -> Wheel<T> {
        Wheel {
            entries: Slab::new(),
            levels: (0..LEVELS)
                .map(|_| Level {
                    occupied: 0,
                    slots: [List::default(); SLOTS],
                })
                .collect(),
            expired: List::default(),
            elapsed: 0,
            inserted: 0,
        }
    }

    /// The wheel's current time: the `now` of the last `poll`.
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the wheel holds no entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Slots allocated for entries (grows to the peak number of entries, never beyond).
    pub fn capacity(&self) -> usize {
        self.entries.capacity()
    }

    /// Adds `value` to fire at tick `deadline`. O(1).
    pub fn insert(&mut self, deadline: u64, value: T) -> Key {
        // The index limit, checked before anything changes (the wheel stays consistent).
        Index::new(self.entries.vacant_key());
        let generation = self.inserted;
        self.inserted += 1;
        let key = self.entries.insert(Entry {
            generation,
            deadline,
            value,
            prev: None,
            next: None,
            place: None,
        });
        self.place(key);
        Key {
            index: key,
            generation,
        }
    }

    /// The slab index of `key`'s entry, if that entry is still in the wheel.
    fn live(&self, key: Key) -> Option<usize> {
        let e = self.entries.get(key.index)?;
        (e.generation == key.generation).then_some(key.index)
    }

    /// The deadline of an entry (`None` once it has fired or been removed).
    pub fn deadline(&self, key: Key) -> Option<u64> {
        self.live(key).map(|i| self.entries[i].deadline)
    }

    /// Mutable access to an entry's value (to replace a waker); `None` once it has fired or
    /// been removed.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        let i = self.live(key)?;
        Some(&mut self.entries[i].value)
    }

    /// Cancels an entry and returns its value, or `None` if it already fired or was removed.
    /// O(1).
    pub fn remove(&mut self, key: Key) -> Option<T> {
        let i = self.live(key)?;
        self.unlink(i);
        Some(self.take(i))
    }

    /// Takes an unlinked entry out of the slab. The slab's free list is last-freed-first, so
    /// after a burst its order is the order in which the timers went, scattered over the
    /// slab, and each insert would follow it to a cold line (a chain of cache misses: 12% of a
    /// burst of 100,000 timers). An empty slab is reset instead, so the next burst fills it
    /// front to back. The reset walks the slots used since the last one: amortised, one step
    /// per insert.
    fn take(&mut self, i: usize) -> T {
        let value = self.entries.remove(i).value;
        if self.entries.is_empty() {
            self.entries.clear();
        }
        value
    }

    /// Moves an entry to a new deadline, keeping its key; false if the entry is gone. O(1).
    pub fn reset(&mut self, key: Key, deadline: u64) -> bool {
        let Some(i) = self.live(key) else {
            return false;
        };
        self.unlink(i);
        self.entries[i].deadline = deadline;
        self.place(i);
        true
    }

    /// The earliest tick at which `poll` has something to do, or `None` if the wheel is empty.
    /// The entries of that slot fire at their own deadlines, which are at or after it.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.expired.head.is_some() {
            return Some(self.elapsed);
        }
        (0..LEVELS).find_map(|l| self.next_in_level(l).map(|(_, start)| start))
    }

    /// Fires (passes to `fire`, removing it) every entry whose deadline is `<= now`, in an
    /// order that respects deadlines across slots. Returns how many fired.
    pub fn poll(&mut self, now: u64, mut fire: impl FnMut(T)) -> usize {
        let mut fired = 0;
        while let Some(key) = self.expired.head.map(Index::get) {
            self.unlink(key);
            fire(self.take(key));
            fired += 1;
        }
        if now < self.elapsed {
            return fired;
        }
        loop {
            let next =
                (0..LEVELS).find_map(|l| self.next_in_level(l).map(|(s, start)| (l, s, start)));
            let Some((level, slot, start)) = next else {
                break;
            };
            if start > now {
                break;
            }
            self.elapsed = self.elapsed.max(start);
            // Take the slot's list, then re-place each entry: it fires or moves down a level.
            let mut cursor = self.levels[level].slots[slot].head.take();
            self.levels[level].occupied &= !(1 << slot);
            while let Some(key) = cursor.map(Index::get) {
                cursor = self.entries[key].next;
                let e = &mut self.entries[key];
                e.prev = None;
                e.next = None;
                e.place = None;
                if e.deadline <= now {
                    fire(self.take(key));
                    fired += 1;
                } else {
                    self.place(key);
                }
            }
        }
        self.elapsed = now;
        fired
    }

    /// The next occupied slot of `level` at or after `elapsed`, and the tick where it starts.
    fn next_in_level(&self, level: usize) -> Option<(usize, u64)> {
        let occupied = self.levels[level].occupied;
        if occupied == 0 {
            return None;
        }
        let now_slot = slot_for(self.elapsed, level);
        let zeros = occupied.rotate_right(now_slot as u32).trailing_zeros() as usize;
        let slot = (now_slot + zeros) % SLOTS;
        let level_start = self.elapsed as u128 & !(level_range(level) - 1);
        let mut start = level_start + slot as u128 * slot_range(level);
        if start < self.elapsed as u128 && slot != now_slot {
            start += level_range(level);
        }
        // The current slot of a level above 0 started before `elapsed`: it is due now.
        let start = start.max(self.elapsed as u128);
        Some((slot, u64::try_from(start).unwrap_or(u64::MAX)))
    }

    /// Links entry `key` into the list its deadline calls for.
    fn place(&mut self, key: usize) {
        let deadline = self.entries[key].deadline;
        if deadline <= self.elapsed {
            self.push(key, None);
        } else {
            let level = level_for(self.elapsed, deadline);
            let slot = slot_for(deadline, level);
            self.push(key, Some((level as u8, slot as u8)));
        }
    }

    fn list_mut(&mut self, place: Option<(u8, u8)>) -> &mut List {
        match place {
            None => &mut self.expired,
            Some((l, s)) => &mut self.levels[l as usize].slots[s as usize],
        }
    }

    fn push(&mut self, key: usize, place: Option<(u8, u8)>) {
        let link = Index::new(key);
        let head = self.list_mut(place).head.replace(link);
        if let Some(h) = head {
            self.entries[h.get()].prev = Some(link);
        }
        let e = &mut self.entries[key];
        e.next = head;
        e.prev = None;
        e.place = place;
        if let Some((l, s)) = place {
            self.levels[l as usize].occupied |= 1 << s;
        }
    }

    fn unlink(&mut self, key: usize) {
        let (prev, next, place) = {
            let e = &self.entries[key];
            (e.prev, e.next, e.place)
        };
        match prev {
            Some(p) => self.entries[p.get()].next = next,
            None => self.list_mut(place).head = next,
        }
        if let Some(n) = next {
            self.entries[n.get()].prev = prev;
        }
        if let Some((l, s)) = place {
            if self.levels[l as usize].slots[s as usize].head.is_none() {
                self.levels[l as usize].occupied &= !(1 << s);
            }
        }
        let e = &mut self.entries[key];
        e.prev = None;
        e.next = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_drained_wheel_is_refilled_front_to_back() {
        let mut wheel = Wheel::new();
        let keys: Vec<Key> = (0..300).map(|i| wheel.insert(1_000 + i, i)).collect();
        assert!(keys.iter().map(|k| k.index).eq(0..300));
        // Cancelled in an order of their own, and the rest fired.
        for k in keys.iter().skip(1).step_by(2) {
            assert!(wheel.remove(*k).is_some());
        }
        assert_eq!(wheel.poll(u64::MAX >> 1, drop), 150);
        assert!(wheel.is_empty());
        // The next burst takes the slots in order, not in the order they were freed.
        let again: Vec<Key> = (0..300).map(|i| wheel.insert(5_000 + i, i)).collect();
        assert!(again.iter().map(|k| k.index).eq(0..300));
        // The old keys name nothing, though their slots are taken again.
        assert!(keys.iter().all(|k| wheel.deadline(*k).is_none()));
    }
}
