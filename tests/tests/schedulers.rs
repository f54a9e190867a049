//! Every scheduler, through the same suite. One line per scheduler.

#[path = "../../examples/src/bin/custom_scheduler/round_robin.rs"]
mod round_robin;

use conformance::conformance_suite;

conformance_suite!(fifo, |n| facade::Builder::new().fifo().worker_threads(n));
conformance_suite!(custom, |n| facade::Builder::new()
    .custom(crate::round_robin::RoundRobin::new())
    .worker_threads(n));
