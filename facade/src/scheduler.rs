//! The plug-in API: everything a scheduling policy needs, so that a custom scheduler depends on
//! `facade` alone; and [`register_scheduler`], which makes a policy selectable by name.
//!
//! The contract itself (what core guarantees, the invariants a policy must meet) is documented
//! in `runtime-core`'s crate docs; the conformance kit (crate `conformance`) checks a policy
//! against it.
//!
//! ```
//! use std::collections::VecDeque;
//! use std::sync::Mutex;
//! use facade::scheduler::{Notify, Runnable, ScheduleInfo, Scheduler};
//!
//! #[derive(Default)]
//! struct Lifo(Mutex<Vec<Runnable>>);
//!
//! impl Scheduler for Lifo {
//!     type Local = ();
//!     fn name(&self) -> &str {
//!         "lifo"
//!     }
//!     fn new_local(&self, _worker: usize) {}
//!     fn schedule(&self, task: Runnable, _: ScheduleInfo, _: Option<&mut ()>) -> Notify {
//!         self.0.lock().unwrap().push(task);
//!         Notify::Any
//!     }
//!     fn next(&self, _worker: usize, _: &mut ()) -> Option<Runnable> {
//!         self.0.lock().unwrap().pop()
//!     }
//! }
//!
//! facade::scheduler::register_scheduler("lifo", Lifo::default)?;
//! // Now `RUNTIME_SCHEDULER=lifo` selects it, like a built-in policy.
//! let rt = facade::Builder::new().scheduler_name("lifo").worker_threads(1).build()?;
//! assert_eq!(rt.scheduler(), "lifo");
//! assert_eq!(rt.block_on(async { facade::spawn(async { 1 }).await }).unwrap(), 1);
//! # Ok::<(), facade::BuildError>(())
//! ```

use std::sync::{Arc, Mutex};

pub use runtime_core::{
    BasicFifo, Hooks, MetricsVisitor, Notify, Priority, RETAINED_QUEUE_CAPACITY, Runnable,
    ScheduleInfo, ScheduleReason, Scheduler, TaskId, TaskMeta, shrink_drained,
};

use crate::builder::{BuildError, SCHEDULERS, Start, start_with};

/// Makes a new instance of a registered policy for each runtime built with its name.
type Factory = Arc<dyn Fn() -> Start + Send + Sync>;

/// The registered policies, in registration order. Poisoning is ignored: a push or a lookup
/// cannot leave the list inconsistent.
static REGISTERED: Mutex<Vec<(String, Factory)>> = Mutex::new(Vec::new());

/// Registers a policy under `name`, so that [`Builder::scheduler_name`](crate::Builder::scheduler_name)
/// and `RUNTIME_SCHEDULER` select it like a built-in one; `make` is called once per runtime.
/// Registering a name again replaces the earlier policy (runtimes already built keep theirs).
///
/// Names are compared without regard to case and surrounding spaces. A built-in name
/// ([`SCHEDULERS`]) or an empty one is an error.
pub fn register_scheduler<S, F>(name: &str, make: F) -> Result<(), BuildError>
where
    S: Scheduler,
    F: Fn() -> S + Send + Sync + 'static,
{
    let key = normalize(name);
    if key.is_empty() || SCHEDULERS.contains(&key.as_str()) {
        return Err(BuildError::invalid(
            "register_scheduler name",
            name,
            format!(
                "a non-empty name other than the built-in ones ({})",
                SCHEDULERS.join(", ")
            ),
        ));
    }
    let factory: Factory = Arc::new(move || start_with(make()));
    let mut list = runtime_core::lock_unpoisoned(&REGISTERED);
    match list.iter_mut().find(|(n, _)| *n == key) {
        Some(entry) => entry.1 = factory,
        None => list.push((key, factory)),
    }
    Ok(())
}

/// The names registered with [`register_scheduler`], in registration order.
pub fn registered_schedulers() -> Vec<String> {
    runtime_core::lock_unpoisoned(&REGISTERED)
        .iter()
        .map(|(n, _)| n.clone())
        .collect()
}

/// A fresh instance of the policy registered as `name`, if there is one.
pub(crate) fn registered(name: &str) -> Option<Start> {
    let key = normalize(name);
    let factory = runtime_core::lock_unpoisoned(&REGISTERED)
        .iter()
        .find(|(n, _)| *n == key)
        .map(|(_, f)| f.clone())?;
    Some(factory())
}

pub(crate) fn normalize(name: &str) -> String {
    name.trim().to_ascii_lowercase()
}
