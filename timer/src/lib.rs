//! Timers: a hierarchical timing wheel ([`Wheel`], in `wheel.rs`), the clock that turns
//! instants into its ticks ([`Clock`], in `clock.rs`), and the timer driver that a runtime
//! parks with ([`Timers`], in `driver.rs`: the wheel under a lock, wakers, and the wake-at
//! handshake with the worker that waits in the reactor).
//!
//! Time in the wheel is a `u64` count of ticks (the runtime uses microseconds). The wheel
//! answers two questions and knows nothing else (no I/O, no clock):
//! [`Wheel::next_deadline`] (when must someone call `poll` next?) and [`Wheel::poll`] (fire
//! everything due by `now`).
//!
//! # Shape
//!
//! [`LEVELS`] levels of 64 slots. A slot of level `l` spans `64^l` ticks, so level 0 has one
//! tick per slot and the 11 levels together cover the whole `u64` range (no deadline is ever
//! too far). Each level keeps a 64-bit bitmap of occupied slots, so finding the next occupied
//! slot is a rotate and a count of trailing zeros. Entries live in a [`slab::Slab`] and each
//! slot is a vector of slab indices, each entry knowing its position in it: insert and cancel
//! (which moves the slot's last index into the hole) are O(1), with no unsafe code, and moving
//! a slot's entries down a level reads its indices in sequence.
//!
//! # Ground rules
//!
//! - An entry sits in the level given by the highest bit in which its deadline differs from
//!   `elapsed` (the wheel's current time), in the slot given by its deadline's digits at that
//!   level. An entry whose deadline is not after `elapsed` sits in the `expired` slot.
//! - `poll(now)` repeatedly takes the earliest occupied slot whose start is `<= now`, moves
//!   `elapsed` to that start and re-inserts the slot's entries: each either fires (deadline
//!   `<= now`) or drops to a lower level. An entry therefore never fires before its deadline.
//! - `elapsed` never goes backwards; `poll` with an earlier `now` does nothing.

mod clock;
mod driver;
mod wheel;

pub use clock::{Clock, FAR};
pub use driver::{Timers, Wait};
pub use wheel::{Key, LEVELS, Wheel};

#[cfg(test)]
mod tests;
