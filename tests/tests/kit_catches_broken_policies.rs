//! The kit fails on policies that break the contract: it is not a suite that cannot fail.

use std::collections::VecDeque;
use std::sync::Mutex;

use conformance::{Kit, Order, Policy};
use facade::scheduler::{Notify, Runnable, ScheduleInfo, Scheduler};

/// Keeps tasks scheduled from a worker in its worker state, and its `drain` forgets that state:
/// breaks invariant 4 (tasks queued at shutdown are never dropped).
#[derive(Default)]
struct ForgetfulDrain(Mutex<VecDeque<Runnable>>);

impl Scheduler for ForgetfulDrain {
    type Local = VecDeque<Runnable>;
    fn new_local(&self, _: usize) -> VecDeque<Runnable> {
        VecDeque::new()
    }
    fn schedule(&self, t: Runnable, _: ScheduleInfo, local: Option<&mut Self::Local>) -> Notify {
        match local {
            Some(l) => {
                l.push_back(t);
                Notify::None
            }
            None => {
                self.0.lock().unwrap().push_back(t);
                Notify::Any
            }
        }
    }
    fn next(&self, _: usize, local: &mut Self::Local) -> Option<Runnable> {
        local
            .pop_front()
            .or_else(|| self.0.lock().unwrap().pop_front())
    }
    fn drain(&self, _: usize, _: &mut Self::Local) -> Option<Runnable> {
        self.0.lock().unwrap().pop_front()
    }
}

/// Runs the newest task first but declares FIFO order: breaks invariant 5.
#[derive(Default)]
struct Lifo(Mutex<Vec<Runnable>>);

impl Scheduler for Lifo {
    type Local = ();
    fn new_local(&self, _: usize) {}
    fn schedule(&self, t: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
        self.0.lock().unwrap().push(t);
        Notify::Any
    }
    fn next(&self, _: usize, _: &mut ()) -> Option<Runnable> {
        self.0.lock().unwrap().pop()
    }
}

/// Whether the kit's test `name` fails on the kit's only policy.
fn fails(kit: &Kit, name: &str) -> bool {
    kit.run_test(name).expect("the kit has this test").is_err()
}

#[test]
fn a_policy_that_loses_tasks_at_shutdown_fails() {
    let kit = Kit::new().policy(Policy::new("forgetful", ForgetfulDrain::default));
    assert!(fails(
        &kit,
        "forgetful::core::shutdown_drains_every_queued_task_once"
    ));
}

#[test]
fn a_policy_that_breaks_its_declared_order_fails() {
    let kit = Kit::new().policy(Policy::new("lifo", Lifo::default).order(Order::FifoOnOneWorker));
    assert!(fails(&kit, "lifo::core::order_is_the_declared_one"));
    // Declaring no order, the same policy passes that test.
    let kit = Kit::new().policy(Policy::new("lifo", Lifo::default));
    assert!(!fails(&kit, "lifo::core::order_is_the_declared_one"));
}
