//! [`Handle::dump`](crate::Handle::dump): a snapshot of every live task (tokio's task dump,
//! which is unstable there; stable here, and on every platform).
//!
//! It walks the runtime's registry of live tasks (one shard lock at a time, as a spawn takes
//! one), so it costs about as much as spawning that many tasks; nothing is recorded for it
//! beyond what every task carries anyway (spawn location, age, polls, state).

use std::fmt;
use std::panic::Location;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::task::{Priority, TaskId};
use crate::watchdog::MAIN_POLL;

/// What a task is doing at the moment of the dump.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    /// Waiting for a wake-up.
    Idle,
    /// Woken (or just spawned), waiting in a queue to be polled.
    Scheduled,
    /// Being polled by this worker.
    Running {
        /// The worker's index.
        worker: usize,
    },
}

impl fmt::Display for TaskState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskState::Idle => f.pad("idle"),
            TaskState::Scheduled => f.pad("scheduled"),
            TaskState::Running { worker } => f.pad(&format!("running on worker {worker}")),
        }
    }
}

/// One live task in a [`TaskDump`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TaskSnapshot {
    /// Its id.
    pub id: TaskId,
    /// Its name, if it was given one.
    pub name: Option<String>,
    /// Where it was spawned.
    pub location: &'static Location<'static>,
    /// Its priority.
    pub priority: Priority,
    /// Idle, scheduled or running.
    pub state: TaskState,
    /// Time since it was spawned (to about 17 ms).
    pub age: Duration,
    /// How many times it has been polled.
    pub polls: u32,
    /// Whether it is a `!Send` task kept beside the policy (`spawn_local`).
    pub local: bool,
}

/// Every live task of a runtime, oldest first; `Display` prints a table.
///
/// ```
/// let rt = runtime_core::Runtime::new(
///     runtime_core::BasicFifo::default(),
///     runtime_core::Config { worker_threads: 0, ..Default::default() },
/// )?;
/// let _waiting = rt.handle().spawn(std::future::pending::<()>());
/// let dump = rt.handle().dump();
/// assert_eq!(dump.tasks.len(), 1);
/// assert!(dump.tasks[0].location.file().ends_with(".rs"));
/// println!("{dump}");
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct TaskDump {
    /// The live tasks, by ascending id (spawn order on each spawning thread).
    pub tasks: Vec<TaskSnapshot>,
}

impl TaskDump {
    pub(crate) fn collect(shared: &crate::shared::Shared) -> TaskDump {
        let running: Vec<u64> = shared
            .counters
            .workers
            .iter()
            .map(|w| w.current.load(Ordering::Relaxed))
            .collect();
        let mut tasks = Vec::new();
        shared.active.for_each(|task| {
            let meta = task.metadata();
            let id = meta.id().as_u64();
            let state = match running.iter().position(|&c| c == id && c & MAIN_POLL == 0) {
                Some(worker) => TaskState::Running { worker },
                None if task.is_scheduled() => TaskState::Scheduled,
                None => TaskState::Idle,
            };
            tasks.push(TaskSnapshot {
                id: meta.id(),
                name: meta.name().map(str::to_owned),
                location: meta.location(),
                priority: meta.priority(),
                state,
                age: meta.age(),
                polls: meta.polls(),
                local: meta.is_local(),
            });
        });
        tasks.sort_by_key(|t| t.id);
        TaskDump { tasks }
    }
}

impl fmt::Display for TaskDump {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} live tasks", self.tasks.len())?;
        writeln!(
            f,
            "{:>8}  {:<20}  {:<22}  {:>9}  {:>8}  {:>4}  spawned at",
            "id", "name", "state", "age", "polls", "prio"
        )?;
        for t in &self.tasks {
            let name = t.name.as_deref().unwrap_or("-");
            let local = if t.local { " (local)" } else { "" };
            writeln!(
                f,
                "{:>8}  {:<20}  {:<22}  {:>9}  {:>8}  {:>4}  {}{local}",
                t.id.as_u64(),
                name,
                t.state,
                format!("{:.3?}", t.age),
                t.polls,
                t.priority.0,
                t.location
            )?;
        }
        Ok(())
    }
}

#[cfg(all(test, not(rt_loom)))]
mod tests {
    use crate::{BasicFifo, Config, Runtime};

    /// Walks the registry while tasks come and go (Miri checks the metadata pointers).
    #[test]
    fn dump_sees_live_tasks_only() {
        let rt = Runtime::new(
            BasicFifo::default(),
            Config {
                worker_threads: 0,
                ..Config::default()
            },
        )
        .unwrap();
        let h = rt.handle().clone();
        rt.block_on(async move {
            let waiting: Vec<_> = (0..5)
                .map(|_| h.spawn(std::future::pending::<()>()))
                .collect();
            let done = h.spawn(async {});
            done.await.unwrap();
            let dump = h.dump();
            assert_eq!(dump.tasks.len(), 5);
            assert!(dump.tasks.iter().all(|t| t.location.file() == file!()));
            assert!(dump.to_string().starts_with("5 live tasks"));
            for w in &waiting {
                w.abort();
            }
        });
    }
}
