use std::collections::BTreeMap;

use crate::wheel::*;

/// xorshift64*: deterministic pseudo-random numbers without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Random inserts, cancels and polls, against a trivial ordered-map timer: the same entries
/// fire, none early, none late (everything due by `now` fires in that poll).
#[test]
fn matches_an_ordered_map_model() {
    let iterations = if cfg!(miri) { 300 } else { 20_000 };
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let mut wheel = Wheel::new();
    let mut model: BTreeMap<(u64, usize), Key> = BTreeMap::new();
    let mut now = 0u64;
    let mut next_id = 0usize;
    for _ in 0..iterations {
        match rng.below(10) {
            0..=4 => {
                // Deadlines across many levels: up to ~2^40 ticks ahead, some already due.
                let shift = rng.below(40);
                let ahead = rng.below(1 << shift);
                let deadline = if rng.below(20) == 0 {
                    now.saturating_sub(ahead)
                } else {
                    now.saturating_add(ahead)
                };
                let key = wheel.insert(deadline, (deadline, next_id));
                model.insert((deadline, next_id), key);
                next_id += 1;
            }
            5..=6 => {
                if let Some((&k, &key)) =
                    model.iter().nth(rng.below(model.len() as u64 + 1) as usize)
                {
                    assert_eq!(wheel.remove(key), Some(k));
                    model.remove(&k);
                }
            }
            _ => {
                // Advance to a random point, sometimes exactly to the next deadline.
                now = match (rng.below(3), wheel.next_deadline()) {
                    (0, Some(d)) => d.max(now),
                    _ => {
                        let bits = rng.below(30);
                        now + rng.below(1 << bits)
                    }
                };
                let mut fired = Vec::new();
                wheel.poll(now, |v| fired.push(v));
                for &(deadline, _) in &fired {
                    assert!(
                        deadline <= now,
                        "fired early: deadline {deadline}, now {now}"
                    );
                }
                let due: Vec<_> = model.range(..=(now, usize::MAX)).map(|(k, _)| *k).collect();
                fired.sort();
                assert_eq!(fired, due, "at now = {now}");
                for k in due {
                    model.remove(&k);
                }
                // The next deadline is never after the earliest entry.
                if let Some((&(earliest, _), _)) = model.iter().next() {
                    let next = wheel.next_deadline().expect("entries left");
                    assert!(
                        next <= earliest.max(now),
                        "next {next} > earliest {earliest}"
                    );
                }
            }
        }
        assert_eq!(wheel.len(), model.len());
    }
}

/// Polling at each `next_deadline` fires entries in deadline order.
#[test]
fn fires_in_deadline_order() {
    let mut rng = Rng(42);
    let mut wheel = Wheel::new();
    let n = if cfg!(miri) { 200 } else { 10_000 };
    for i in 0..n {
        wheel.insert(1 + rng.below(50_000_000), i);
    }
    let mut last = 0;
    let mut seen = 0;
    while let Some(d) = wheel.next_deadline() {
        let mut fired = Vec::new();
        wheel.poll(d, |v| fired.push(v));
        seen += fired.len();
        assert!(d >= last);
        last = d;
    }
    assert_eq!(seen, n);
}

#[test]
fn far_deadlines_saturate_and_still_fire() {
    let mut wheel = Wheel::new();
    wheel.insert(u64::MAX, "max");
    wheel.insert(u64::MAX - 1, "almost");
    wheel.insert(1 << 62, "far");
    let mut fired = Vec::new();
    wheel.poll(1 << 61, |v| fired.push(v));
    assert!(fired.is_empty());
    wheel.poll(u64::MAX - 1, |v| fired.push(v));
    assert_eq!(fired, ["far", "almost"]);
    wheel.poll(u64::MAX, |v| fired.push(v));
    assert_eq!(fired, ["far", "almost", "max"]);
}

#[test]
fn already_due_entries_fire_on_the_next_poll() {
    let mut wheel = Wheel::new();
    wheel.poll(1_000, |_: ()| {});
    wheel.insert(10, ());
    assert_eq!(wheel.next_deadline(), Some(1_000));
    assert_eq!(wheel.poll(1_000, |_| {}), 1);
    assert!(wheel.is_empty());
}

#[test]
fn reset_moves_an_entry() {
    let mut wheel = Wheel::new();
    let k = wheel.insert(100, 'a');
    assert!(wheel.reset(k, 10));
    assert_eq!(wheel.next_deadline(), Some(10));
    let mut fired = Vec::new();
    wheel.poll(10, |v| fired.push(v));
    assert_eq!(fired, ['a']);
    assert!(!wheel.reset(k, 5));
}

/// A million insert/cancel cycles keep memory constant: cancelled slots are reused.
#[test]
fn insert_cancel_cycles_keep_constant_memory() {
    let cycles = if cfg!(miri) { 1_000 } else { 1_000_000 };
    let mut wheel = Wheel::new();
    let mut rng = Rng(7);
    let live: Vec<_> = (0..100).map(|i| wheel.insert(1_000 + i, ())).collect();
    let cap = wheel.capacity();
    for _ in 0..cycles {
        let k = wheel.insert(rng.below(1 << 40), ());
        wheel.remove(k);
    }
    assert_eq!(wheel.len(), live.len());
    assert!(
        wheel.capacity() <= cap + 1,
        "capacity grew from {cap} to {}",
        wheel.capacity()
    );
}

/// A key whose entry fired (or was removed) matches nothing, though the slab slot now holds a
/// newer entry: a stale key can never cancel, reset or touch another timer.
#[test]
fn a_stale_key_never_reaches_a_newer_entry() {
    let mut wheel = Wheel::new();
    let old = wheel.insert(5, "old");
    assert_eq!(wheel.poll(10, drop), 1);
    let new = wheel.insert(20, "new");
    assert_ne!(old, new);
    assert_eq!(wheel.deadline(old), None);
    assert!(wheel.get_mut(old).is_none());
    assert!(!wheel.reset(old, 30));
    assert_eq!(wheel.remove(old), None);
    assert_eq!(wheel.deadline(new), Some(20));
    let gone = wheel.insert(25, "removed");
    wheel.remove(gone);
    let newer = wheel.insert(40, "newer");
    assert_eq!(wheel.remove(gone), None);
    assert_eq!(wheel.len(), 2);
    assert_eq!(wheel.remove(newer), Some("newer"));
}

mod driver {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{Wake, Waker};
    use std::time::Duration;

    use crate::Timers;

    struct NoUnpark;
    impl runtime_core::Unpark for NoUnpark {
        fn unpark(&self) {}
    }

    #[derive(Default)]
    struct Count(AtomicUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.wake_by_ref();
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn setup() -> (Timers, Arc<Count>, Waker) {
        let timers = Timers::new(true, Arc::new(NoUnpark));
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        (timers, count, waker)
    }

    /// A timer counts as fired once the driver has fired through its tick, and not before; a
    /// fired timer is cancelled without touching the wheel, a pending one is removed.
    #[test]
    fn has_fired_follows_the_driver_and_cancel_at_removes_only_pending_timers() {
        let (timers, count, waker) = setup();
        let (mut a, mut b) = (None, None);
        assert!(timers.register(&mut a, 100, &waker));
        assert!(timers.register(&mut b, 300, &waker));
        assert_eq!(timers.len(), 2);
        assert!(!timers.has_fired(100));
        timers.clock.advance(Duration::from_micros(200));
        assert_eq!(timers.fire_due(), 1);
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(timers.has_fired(100) && !timers.has_fired(300));
        timers.cancel_at(&mut a, 100);
        timers.cancel_at(&mut b, 300);
        assert!(a.is_none() && b.is_none());
        assert!(timers.is_empty(), "the pending timer was removed");
        timers.clock.advance(Duration::from_micros(200));
        timers.fire_due();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "a cancelled timer never fires"
        );
    }

    /// Keeps a timer at tick 1,000, has the driver fire through tick 500, then registers
    /// `late`'s waker for tick 400; returns whether it is pending and the key it left.
    fn register_behind_the_driver(
        timers: &Timers,
        keep: &Waker,
        late: &Waker,
    ) -> (bool, Option<crate::Key>) {
        let (mut ahead, mut behind) = (None, None);
        assert!(timers.register(&mut ahead, 1_000, keep));
        timers.clock.advance(Duration::from_micros(500));
        timers.fire_due();
        let pending = timers.register(&mut behind, 400, late);
        (pending, behind)
    }

    /// A registration for a tick the driver has already passed is due at once: it says so,
    /// wakes nothing (the caller completes) and leaves nothing in the wheel (so every timer in
    /// the wheel fires by the time its tick passes).
    #[test]
    fn a_tick_already_passed_is_due_at_once() {
        let (timers, count, waker) = setup();
        assert_eq!(
            register_behind_the_driver(&timers, &waker, &waker),
            (false, None)
        );
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert_eq!(
            timers.len(),
            1,
            "only the timer still ahead is in the wheel"
        );
        // A timer that fired, registered again for its passed tick: due, not re-armed.
        let mut fired = None;
        assert!(timers.register(&mut fired, 600, &waker));
        timers.clock.advance(Duration::from_micros(200));
        assert_eq!(timers.fire_due(), 1);
        assert!(!timers.register(&mut fired, 600, &waker));
        assert!(fired.is_none());
    }

    struct Panics;
    impl Wake for Panics {
        fn wake(self: Arc<Self>) {
            panic!("injected: a waker that panics");
        }
    }

    /// The waker of a tick already passed is not called (an earlier version woke it, and a
    /// panic in it reached the registering task's poll).
    #[test]
    fn a_panicking_waker_of_a_passed_tick_is_not_called() {
        let (timers, _count, waker) = setup();
        let panics = Waker::from(Arc::new(Panics));
        assert_eq!(
            register_behind_the_driver(&timers, &waker, &panics),
            (false, None)
        );
    }
}
