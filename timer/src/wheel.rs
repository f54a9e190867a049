//! The wheel itself: levels of slots, each a vector of slab indices (see the crate docs for
//! its shape and ground rules).

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
    /// Where it is in its slot's vector.
    pos: u32,
    /// Which slot holds it: `(level, slot)`, or `None` for the expired slot.
    place: Option<(u8, u8)>,
}

/// 40 bytes with a waker (48 with the doubly linked lists this replaced): a burst of timers
/// touches less memory.
const _: () = assert!(std::mem::size_of::<Entry<std::task::Waker>>() == 40);

/// A slot: the slab indices of its entries, in no order (a cancel swaps the last one into the
/// hole). A vector rather than a list through the entries, so that moving a slot's entries
/// down a level (or firing them) reads its indices in sequence and the entries' cache misses
/// overlap, instead of each waiting for the one before it to give the next index (in a burst
/// of 100,000 timers on a one-thread runtime, the walk of the lists took 12-20% of the
/// profile, most of it on the load of each next entry).
type Slot = Vec<u32>;

/// Entries of a slot read ahead at a time as it is moved down a level ([`Wheel::due`]).
const CHUNK: usize = 32;

/// A slot's vector is kept, emptied, for reuse up to this capacity, and given back above it
/// (so that a burst's memory is not held for good). Far below core's
/// `RETAINED_QUEUE_CAPACITY` for run queues: a wheel has 705 slots, not one queue.
const RETAINED_SLOT_CAPACITY: usize = 64;

#[derive(Debug)]
struct Level {
    occupied: u64,
    slots: [Slot; SLOTS],
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
    expired: Slot,
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
                    slots: std::array::from_fn(|_| Slot::new()),
                })
                .collect(),
            expired: Slot::new(),
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
        assert!(
            u32::try_from(self.entries.vacant_key()).is_ok(),
            "a wheel holds at most 2^32 timers"
        );
        let generation = self.inserted;
        self.inserted += 1;
        let key = self.entries.insert(Entry {
            generation,
            deadline,
            value,
            pos: 0,
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
        if !self.expired.is_empty() {
            return Some(self.elapsed);
        }
        (0..LEVELS).find_map(|l| self.next_in_level(l).map(|(_, start)| start))
    }

    /// Fires (passes to `fire`, removing it) every entry whose deadline is `<= now`, in an
    /// order that respects deadlines across slots. Returns how many fired.
    pub fn poll(&mut self, now: u64, mut fire: impl FnMut(T)) -> usize {
        let mut fired = 0;
        if !self.expired.is_empty() {
            let keys = std::mem::take(&mut self.expired);
            let mut t = Taken::new(self, keys);
            while let Some(&key) = t.keys.get(t.done) {
                t.done += 1;
                fire(t.wheel.take(key as usize));
                fired += 1;
            }
            let keys = t.finish();
            self.expired = recycle(keys);
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
            // Take the slot's entries, then re-place each: it fires or moves down a level
            // (never back into this slot, which is behind `elapsed` now).
            let keys = std::mem::take(&mut self.levels[level].slots[slot]);
            self.levels[level].occupied &= !(1 << slot);
            let mut t = Taken::new(self, keys);
            while t.done < t.keys.len() {
                let chunk = t.done..(t.done + CHUNK).min(t.keys.len());
                let due = t.wheel.due(&t.keys[chunk.clone()], now);
                for (i, due) in chunk.zip(due) {
                    let key = t.keys[i] as usize;
                    t.done = i + 1;
                    if due {
                        fire(t.wheel.take(key));
                        fired += 1;
                    } else {
                        t.wheel.place(key);
                    }
                }
            }
            let taken = t.finish();
            let emptied = &mut self.levels[level].slots[slot];
            if emptied.capacity() == 0 {
                *emptied = recycle(taken);
            }
        }
        self.elapsed = now;
        fired
    }

    /// Whether each entry of `chunk` is due by `now`. A loop of its own, with nothing else in
    /// it, so that the reads of the entries (cache misses, in a burst) overlap; firing one
    /// runs its waker, which leaves the processor no room to read ahead.
    fn due(&self, chunk: &[u32], now: u64) -> [bool; CHUNK] {
        let mut due = [false; CHUNK];
        for (d, &key) in due.iter_mut().zip(chunk) {
            *d = self.entries[key as usize].deadline <= now;
        }
        due
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

    fn slot_mut(&mut self, place: Option<(u8, u8)>) -> &mut Slot {
        match place {
            None => &mut self.expired,
            Some((l, s)) => &mut self.levels[l as usize].slots[s as usize],
        }
    }

    fn push(&mut self, key: usize, place: Option<(u8, u8)>) {
        let slot = self.slot_mut(place);
        let pos = slot.len() as u32;
        // `insert` checked that every index fits.
        slot.push(key as u32);
        let e = &mut self.entries[key];
        e.pos = pos;
        e.place = place;
        if let Some((l, s)) = place {
            self.levels[l as usize].occupied |= 1 << s;
        }
    }

    fn unlink(&mut self, key: usize) {
        let (pos, place) = {
            let e = &self.entries[key];
            (e.pos as usize, e.place)
        };
        let slot = self.slot_mut(place);
        slot.swap_remove(pos);
        let moved = slot.get(pos).copied();
        let now_empty = slot.is_empty();
        if now_empty {
            *slot = recycle(std::mem::take(slot));
        }
        if let Some(m) = moved {
            self.entries[m as usize].pos = pos as u32;
        }
        if let (true, Some((l, s))) = (now_empty, place) {
            self.levels[l as usize].occupied &= !(1 << s);
        }
    }
}

/// A slot's indices taken out of the wheel to be fired or placed again, the first `done` of
/// them handled. If `fire` panics (user code), dropping this places the rest again, so that the
/// wheel stays whole: every entry is in the slot its `place` and `pos` name, and a later
/// `remove` or `poll` finds it.
struct Taken<'a, T> {
    wheel: &'a mut Wheel<T>,
    keys: Slot,
    done: usize,
}

impl<'a, T> Taken<'a, T> {
    fn new(wheel: &'a mut Wheel<T>, keys: Slot) -> Self {
        Taken {
            wheel,
            keys,
            done: 0,
        }
    }

    /// The indices, every one handled, for reuse.
    fn finish(mut self) -> Slot {
        debug_assert_eq!(self.done, self.keys.len());
        std::mem::take(&mut self.keys)
    }
}

impl<T> Drop for Taken<'_, T> {
    fn drop(&mut self) {
        for i in self.done..self.keys.len() {
            self.wheel.place(self.keys[i] as usize);
        }
    }
}

/// An emptied slot's vector, to put back in its place: kept if small, else given back.
fn recycle(mut slot: Slot) -> Slot {
    if slot.capacity() > RETAINED_SLOT_CAPACITY {
        return Slot::new();
    }
    slot.clear();
    slot
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::panic::AssertUnwindSafe;

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

    /// A `fire` that panics (user code) leaves the wheel whole: the entries not yet fired stay,
    /// and can be removed or fired later, from the expired slot as from a level's.
    #[test]
    fn a_panicking_fire_leaves_the_wheel_whole() {
        let mut wheel = Wheel::new();
        let late: Vec<Key> = (0..10).map(|i| wheel.insert(100, i)).collect();
        let panics = |w: &mut Wheel<u32>, now| {
            let mut calls = 0;
            let r = std::panic::catch_unwind(AssertUnwindSafe(|| {
                w.poll(now, |_| {
                    calls += 1;
                    assert!(calls < 3, "injected: the third firing panics");
                })
            }));
            assert!(r.is_err());
        };
        panics(&mut wheel, 100);
        // Two fired and the third was taken as it panicked: seven are left, in their slots.
        assert_eq!(wheel.len(), 7);
        let left: Vec<Key> = late
            .into_iter()
            .filter(|k| wheel.deadline(*k).is_some())
            .collect();
        assert_eq!(left.len(), 7);
        assert!(wheel.remove(left[0]).is_some());
        assert_eq!(wheel.poll(100, drop), 6);
        assert!(wheel.is_empty());
        // The same from the expired slot (deadlines already behind the wheel's time).
        for i in 0..10 {
            wheel.insert(0, i);
        }
        panics(&mut wheel, 200);
        assert_eq!(wheel.len(), 7);
        assert_eq!(wheel.poll(200, drop), 7);
        assert!(wheel.is_empty());
    }

    /// The slots' vectors of a burst, cancelled or fired, are given back: none keeps more
    /// than `RETAINED_SLOT_CAPACITY` once empty.
    #[test]
    fn slots_give_back_a_bursts_memory() {
        let retained = |w: &Wheel<u32>| {
            w.levels
                .iter()
                .flat_map(|l| l.slots.iter())
                .chain([&w.expired])
                .map(Vec::capacity)
                .max()
                .unwrap()
        };
        let mut wheel = Wheel::new();
        // Cancelled: all in one slot of level 1, then removed in an order of their own.
        let keys: Vec<Key> = (0..10_000).map(|i| wheel.insert(100, i)).collect();
        assert!(retained(&wheel) >= 10_000);
        for k in keys.iter().rev().step_by(2).chain(keys.iter().step_by(2)) {
            assert!(wheel.remove(*k).is_some());
        }
        assert!(wheel.is_empty());
        assert!(retained(&wheel) <= RETAINED_SLOT_CAPACITY);
        // Fired: from a slot of level 1, through one of level 0, and from the expired slot.
        for i in 0..10_000 {
            wheel.insert(200 + u64::from(i % 2), i);
        }
        let mut fired = 0;
        wheel.poll(200, |_| fired += 1);
        assert_eq!(fired, 5_000);
        wheel.poll(1_000, |_| fired += 1);
        assert_eq!(fired, 10_000);
        for i in 0..10_000 {
            wheel.insert(0, i);
        }
        wheel.poll(1_000, |_| fired += 1);
        assert_eq!(fired, 20_000);
        assert!(retained(&wheel) <= RETAINED_SLOT_CAPACITY);
    }
}
