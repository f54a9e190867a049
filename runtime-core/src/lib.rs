//! The core of a runtime whose scheduling policy is a plug-in.
//!
//! This crate owns everything that does not depend on the policy: the task harness (on
//! `async-task`), the worker loop, the idle/park protocol and the [`Driver`] hook through which
//! an I/O and timer driver parks idle workers, the thread-local runtime context, the cooperative
//! budget, counters and shutdown. A policy implements [`Scheduler`]: it only stores runnable
//! tasks and says which one a worker runs next.
//!
//! Applications use the `facade` crate; this one is for writing schedulers.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Mutex;
//! use runtime_core::{Config, Runnable, Runtime, ScheduleInfo, Scheduler};
//!
//! #[derive(Default)]
//! struct Fifo(Mutex<VecDeque<Runnable>>);
//!
//! impl Scheduler for Fifo {
//!     type Local = ();
//!     fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) {
//!         self.0.lock().unwrap().push_back(task);
//!     }
//!     fn next(&self, _: usize, _: &mut ()) -> Option<Runnable> {
//!         self.0.lock().unwrap().pop_front()
//!     }
//! }
//!
//! let rt = Runtime::new(Fifo::default(), Config { worker_threads: 2, ..Config::default() })?;
//! let answer = rt.block_on(async { rt.spawn(async { 6 * 7 }).await });
//! assert_eq!(answer.unwrap(), 42);
//! # Ok::<(), std::io::Error>(())
//! ```

mod active;
pub mod context;
pub mod coop;
mod idle;
mod metrics;
mod park;
mod runtime;
mod scheduler;
mod sync;
mod task;
mod watchdog;
mod worker;

pub use async_task;
pub use context::{EnterGuard, NESTED_BLOCK_ON, NoRuntime};
pub use coop::{YieldNow, yield_now};
pub use idle::MAX_WORKERS;
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use park::{Driver, TimerHint, Unpark};
pub use runtime::{Config, Handle, Runtime, SpawnOptions, spawn_unowned};
pub use scheduler::{Notify, ScheduleInfo, ScheduleReason, Scheduler};
pub use task::{
    JoinError, JoinHandle, Priority, Runnable, TaskId, TaskMeta, current_priority,
    set_current_priority, with_current_task,
};
