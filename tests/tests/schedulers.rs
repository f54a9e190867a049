//! The kit, run on every policy of this workspace: the built-in ones, through their own
//! `Builder` calls, and the example round-robin policy, through `Builder::custom` as a third
//! party would. `cargo test -p conformance -- fifo::` runs one policy's tests.

use conformance::{Kit, Order, Policy};
use examples::round_robin::RoundRobin;
use sched_fifo::{Fifo, FifoConfig, FifoOrder};
use sched_priority::{PriorityConfig, PriorityScheduler};
use sched_worksteal::{WorkStealing, WorkStealingConfig};

fn main() {
    let priority = || PriorityScheduler::new(PriorityConfig::default()).expect("default bands");
    let global = || FifoConfig::default().with_order(FifoOrder::Global);
    let no_lifo = || WorkStealing::with_config(WorkStealingConfig::default().with_lifo_slot(false));
    Kit::new()
        .policy(
            Policy::new("fifo", Fifo::new)
                .order(Order::FifoOnOneWorker)
                .builder(|n| facade::Builder::new().fifo().worker_threads(n)),
        )
        .policy(
            Policy::new("fifo_global", move || Fifo::with_config(global()))
                .order(Order::FifoOnOneWorker)
                .builder(move |n| facade::Builder::new().fifo_with(global()).worker_threads(n)),
        )
        .policy(
            Policy::new("worksteal", WorkStealing::new)
                .builder(|n| facade::Builder::new().work_stealing().worker_threads(n)),
        )
        .policy(Policy::new("worksteal_nolifo", no_lifo).builder(|n| {
            facade::Builder::new()
                .work_stealing_with(WorkStealingConfig::default().with_lifo_slot(false))
                .worker_threads(n)
        }))
        .policy(
            Policy::new("priority", priority)
                .order(Order::FifoOnOneWorker)
                .builder(|n| {
                    facade::Builder::new()
                        .priority_scheduler()
                        .worker_threads(n)
                }),
        )
        .policy(Policy::new("round_robin", RoundRobin::new).order(Order::FifoOnOneWorker))
        .run()
}
