//! Every scheduler, through the same suite. One line per scheduler.

#[path = "../../examples/src/bin/custom_scheduler/round_robin.rs"]
mod round_robin;

use conformance::conformance_suite;

conformance_suite!(fifo, |n| facade::Builder::new().fifo().worker_threads(n));
conformance_suite!(worksteal, |n| facade::Builder::new()
    .work_stealing()
    .worker_threads(n));
conformance_suite!(worksteal_nolifo, |n| facade::Builder::new()
    .work_stealing()
    .lifo_slot(false)
    .worker_threads(n));
conformance_suite!(worksteal_cq, |n| facade::Builder::new()
    .work_stealing_with(
        facade::WorkStealingConfig::default().with_queue(facade::QueueKind::Concurrent)
    )
    .worker_threads(n));
conformance_suite!(priority, |n| facade::Builder::new()
    .priority_scheduler()
    .worker_threads(n));
conformance_suite!(custom, |n| facade::Builder::new()
    .custom(crate::round_robin::RoundRobin::new())
    .worker_threads(n));
