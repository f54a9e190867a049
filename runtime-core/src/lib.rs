//! The core of a runtime whose scheduling policy is a plug-in.
//!
//! This crate owns everything that does not depend on the policy: the task harness (its own
//! task cell: one allocation per task), the worker loop, the idle/park protocol and the [`Driver`] hook through which
//! an I/O and timer driver parks idle workers, the thread-local runtime context, the cooperative
//! budget, counters and shutdown. A policy implements [`Scheduler`]: it only stores runnable
//! tasks and says which one a worker runs next.
//!
//! Applications use the `facade` crate (which re-exports the plug-in API as
//! `facade::scheduler`); this one is what a scheduler needs, and all it needs.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Mutex;
//! use runtime_core::{Config, Notify, Runnable, Runtime, ScheduleInfo, Scheduler};
//!
//! #[derive(Default)]
//! struct Fifo(Mutex<VecDeque<Runnable>>);
//!
//! impl Scheduler for Fifo {
//!     type Local = ();
//!     fn new_local(&self, _worker: usize) {}
//!     fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
//!         self.0.lock().unwrap().push_back(task);
//!         Notify::Any
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
//!
//! # The scheduler contract
//!
//! This section is the reference for writing a policy (version 2 of the contract). Core calls
//! the policy, never the other way round for running futures: the policy stores
//! [`Runnable`]s and hands them out; core polls them, wakes and parks workers, and drives I/O
//! and timers.
//!
//! ## What a policy implements
//!
//! | method | when core calls it | default |
//! | --- | --- | --- |
//! | [`init`](Scheduler::init) | once, first, with the number of workers | nothing |
//! | [`new_local`](Scheduler::new_local) | once per worker, after `init` | required |
//! | [`hooks`](Scheduler::hooks) | once, after `init`: which optional operations to call | none |
//! | [`schedule`](Scheduler::schedule) | a task became runnable (spawn, wake, yield); from any thread; returns whom to wake ([`Notify`]) | required |
//! | [`next`](Scheduler::next) | worker `i` wants a task; `None` parks it | required |
//! | [`account`](Scheduler::account) | with [`Hooks::account_polls`], after each poll, with its duration | nothing |
//! | [`task_ended`](Scheduler::task_ended) | with [`Hooks::task_ended`], once per task whose future is gone | nothing |
//! | [`metrics`](Scheduler::metrics) | on [`Handle::metrics`]: the policy's counters, to a [`MetricsVisitor`] | none |
//! | [`drain`](Scheduler::drain) | at shutdown, until `None` | `next` |
//! | [`name`](Scheduler::name) | for reports | the type's name |
//!
//! Per-task state: [`TaskMeta::policy_slot`], a word the policy owns in every task (free: it
//! sits in padding), released in `task_ended` if it indexes something.
//!
//! ## What core guarantees
//!
//! - `init` comes before anything else; `new_local(i)` before worker `i` calls anything.
//! - Core holds each worker's [`Local`](Scheduler::Local) state. While worker `i` runs, only
//!   its thread touches it: `next`, `account` and `drain` get it, and `schedule` gets it when
//!   called on that thread (unless it is already borrowed further up the stack: then `None`).
//!   Once a worker has stopped, core may hand its state to `drain` on another thread.
//! - `schedule` may be called from any thread, concurrently with everything else.
//! - After `schedule` returns [`Notify::Any`] or [`Notify::Worker`], core wakes that worker
//!   (or one idle worker) unless one is already searching; and a worker that is about to sleep
//!   always calls `next` once more after announcing it.
//! - Between polls, core itself checks for due timers and ready I/O, for every policy, at least
//!   every millisecond of busy time.
//!
//! ## What core does with a policy that fails
//!
//! A panic in any method of the policy, or a policy that holds runnable tasks while every
//! worker has asked it for work and parked (for the stall timeout of
//! [`Config::policy_stall_timeout`]), ejects it: core switches to [`BasicFifo`] while the
//! runtime runs, reschedules what the policy's `drain` hands back, then drops the policy, which
//! cancels any task it kept. An ERROR names the policy and what it did;
//! [`RuntimeMetrics::ejection`] reports it. The protocol is in `policy.rs`.
//!
//! ## What a policy must meet
//!
//! The conformance kit (crate `conformance`) checks each of these; run it on your policy.
//!
//! 1. **No lost task.** Once `schedule` has returned, a later `next` on some worker returns the
//!    task (unless the runtime shuts down). A task may be hidden only where the worker named by
//!    the returned [`Notify`] (for [`Notify::Any`]: every worker) looks in `next`; for
//!    [`Notify::None`], where the calling worker looks.
//! 2. **At most once.** A task given to `schedule` comes back out of `next` or `drain` once.
//!    [`Runnable`] is not `Clone`: the type system already enforces this.
//! 3. **No starvation.** A task that stays queued is eventually returned by `next` while the
//!    workers keep calling it.
//! 4. **Drain.** At shutdown, `drain` with each worker's state hands back every task still
//!    queued in that state or in the policy's shared state.
//! 5. **Order, as declared.** A policy documents the order it promises (FIFO: the order of
//!    `schedule` calls); the kit checks the one it declares.
//!
//! ## Worker state without `Default`
//!
//! `Local` needs no `Default`: `new_local` is its only constructor, and core never moves a
//! state out to replace it. A policy whose workers own a queue creates it in `new_local` and
//! publishes the parts other workers need (a stealer) through its shared state.

mod active;
mod basic;
mod block_on;
mod cell;
mod config;
#[cfg(feature = "console")]
mod console;
pub mod context;
pub mod coop;
mod dump;
pub mod fault;
mod handle;
mod histogram;
pub mod hooks;
mod idle;
mod local;
mod metrics;
mod nursery;
mod park;
mod policy;
mod runtime;
mod scheduler;
mod service;
mod shared;
mod sync;
mod task;
mod watchdog;
mod worker;

pub use basic::BasicFifo;
pub use config::{Config, Extensions, SpawnOptions};
pub use context::{EnterGuard, GUARDS_OUT_OF_ORDER, NESTED_BLOCK_ON, NoRuntime};
pub use coop::{YieldNow, yield_now};
pub use dump::{TaskDump, TaskSnapshot, TaskState};
pub use handle::{Handle, pool_task};
pub use histogram::{
    HistogramBuckets, HistogramClasses, HistogramConfig, HistogramSnapshot, MAX_BUCKETS,
};
pub use hooks::RuntimeHooks;
pub use idle::MAX_WORKERS;
pub use local::{LOCAL_BATCH, LocalTasks};
pub use metrics::{RuntimeMetrics, WorkerMetrics};
pub use park::{Driver, IoHint, TimerHint, Unpark};
pub use policy::Ejection;
pub use runtime::Runtime;
pub use scheduler::{
    Hooks, MetricsVisitor, Notify, RETAINED_QUEUE_CAPACITY, ScheduleInfo, ScheduleReason,
    Scheduler, shrink_drained,
};
pub use sync::lock_unpoisoned;
pub use task::{
    AbortHandle, JoinError, JoinHandle, Priority, Runnable, TaskId, TaskMeta, current_priority,
    set_current_priority, with_current_task,
};
