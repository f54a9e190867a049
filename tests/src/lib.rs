//! The conformance kit: the tests every scheduling policy must pass, runnable on ours and on
//! yours.
//!
//! Two tiers:
//! - **core** (always): the policy under `runtime-core` alone: no lost task, at most once,
//!   drain at shutdown, wakes from foreign threads, wakes racing with shutdown, and the order
//!   the policy declares ([`Order`]);
//! - **full** (feature `full`, on by default): the whole runtime through `facade`: I/O, timers,
//!   blocking work, the watchdog, misuse, shutdown, each in current-thread mode and with worker
//!   threads.
//!
//! Every `pub fn` of a test module is a test (the build script registers it): adding a test is
//! writing one function.
//!
//! # Running it on your policy
//!
//! In your crate's `Cargo.toml`:
//!
//! ```toml
//! [dev-dependencies]
//! conformance = { path = "…/tests" }
//!
//! [[test]]
//! name = "conformance"
//! harness = false
//! ```
//!
//! and in `tests/conformance.rs`:
//!
//! ```no_run
//! # use runtime_core::BasicFifo as MyPolicy;
//! use conformance::{Kit, Order, Policy};
//!
//! fn main() {
//!     Kit::new()
//!         .policy(Policy::new("mine", MyPolicy::default).order(Order::FifoOnOneWorker))
//!         .run();
//! }
//! ```
//!
//! `cargo test` then runs every test as `mine::core::…` and `mine::suite::…`, with libtest's
//! filters (`cargo test -- mine::core`), `--list`, `--test-threads` and its closing line.

use std::io;
use std::sync::Arc;

use runtime_core::{Config, Scheduler};

#[cfg(feature = "full")]
pub mod full;

pub mod core;
pub mod util;

mod table {
    include!(concat!(env!("OUT_DIR"), "/tests.rs"));
}

/// Gives the `facade::Builder` of the policy under test with `n` worker threads (0:
/// current-thread mode). A reference to a closure the kit keeps for the whole run, so that
/// tests can copy it into threads.
#[cfg(feature = "full")]
pub type Make = &'static (dyn Fn(usize) -> facade::Builder + Send + Sync);

/// Starts a core runtime of the policy under test with the given configuration.
pub type CoreMake = &'static (dyn Fn(Config) -> io::Result<runtime_core::Runtime> + Send + Sync);

/// A core-tier test.
type CoreTest = fn(Core);
/// A full-tier test.
#[cfg(feature = "full")]
type FullTest = fn(Make);

/// The order in which a policy promises to hand out tasks, checked by the core tier.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    /// No promise beyond the invariants (work-stealing: its LIFO slot runs the newest task
    /// first).
    #[default]
    Unspecified,
    /// With one worker, tasks run in the order in which they were scheduled (FIFO).
    FifoOnOneWorker,
}

/// What a core-tier test gets: how to start the policy, and the order it declares.
#[derive(Clone, Copy)]
pub struct Core {
    /// Starts a runtime of the policy.
    pub make: CoreMake,
    /// The order the policy declares.
    pub order: Order,
}

impl std::fmt::Debug for Core {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Core")
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

impl Core {
    /// A runtime of the policy with `workers` worker threads (0: current-thread mode).
    pub fn runtime(&self, workers: usize) -> runtime_core::Runtime {
        (self.make)(Config {
            worker_threads: workers,
            ..Config::default()
        })
        .expect("the policy under test starts")
    }
}

/// A policy to run the kit on: a name (the prefix of its tests' names), how to make a fresh
/// instance, and what it declares.
pub struct Policy {
    name: String,
    core: CoreMake,
    #[cfg(feature = "full")]
    full: Make,
    order: Order,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("order", &self.order)
            .finish_non_exhaustive()
    }
}

/// Keeps `value` for the rest of the process (the kit's closures live as long as the run).
fn keep<T: ?Sized>(value: Box<T>) -> &'static T {
    Box::leak(value)
}

impl Policy {
    /// The policy that `make` creates (called once per runtime the tests build).
    pub fn new<S, F>(name: &str, make: F) -> Policy
    where
        S: Scheduler,
        F: Fn() -> S + Send + Sync + 'static,
    {
        let make = Arc::new(make);
        let core = make.clone();
        Policy {
            name: name.to_owned(),
            core: keep(Box::new(move |config| {
                runtime_core::Runtime::new(core(), config)
            })),
            #[cfg(feature = "full")]
            full: keep(Box::new(move |n| {
                facade::Builder::new().custom(make()).worker_threads(n)
            })),
            order: Order::Unspecified,
        }
    }

    /// Declares the order the policy promises (checked by the core tier).
    pub fn order(mut self, order: Order) -> Policy {
        self.order = order;
        self
    }

    /// Builds the full tier's runtimes with `builder` instead of `Builder::custom` (to test a
    /// built-in policy through its own `Builder` call, or with builder settings).
    #[cfg(feature = "full")]
    pub fn builder(
        mut self,
        builder: impl Fn(usize) -> facade::Builder + Send + Sync + 'static,
    ) -> Policy {
        self.full = keep(Box::new(builder));
        self
    }
}

/// The kit: policies in, one libtest-style run out.
#[derive(Debug, Default)]
pub struct Kit {
    policies: Vec<Policy>,
}

impl Kit {
    /// A kit with no policy yet.
    pub fn new() -> Kit {
        Kit::default()
    }

    /// Adds a policy; its tests are named `NAME::tier_module::test`.
    pub fn policy(mut self, policy: Policy) -> Kit {
        self.policies.push(policy);
        self
    }

    /// Every test for every policy: its full name (`policy::module::test`) and its body.
    fn cases(&self) -> Vec<(String, Box<dyn FnOnce() + Send>)> {
        let mut cases: Vec<(String, Box<dyn FnOnce() + Send>)> = Vec::new();
        for p in &self.policies {
            let core = Core {
                make: p.core,
                order: p.order,
            };
            for &(name, test) in table::CORE {
                cases.push((format!("{}::{name}", p.name), Box::new(move || test(core))));
            }
            #[cfg(feature = "full")]
            for &(name, test) in table::FULL {
                let make = p.full;
                cases.push((format!("{}::{name}", p.name), Box::new(move || test(make))));
            }
            #[cfg(feature = "console")]
            for &(name, test) in table::CONSOLE {
                let make = p.full;
                cases.push((format!("{}::{name}", p.name), Box::new(move || test(make))));
            }
        }
        cases
    }

    /// Every test for every policy, as libtest-mimic trials.
    pub fn trials(&self) -> Vec<libtest_mimic::Trial> {
        self.cases()
            .into_iter()
            .map(|(name, body)| {
                libtest_mimic::Trial::test(name, move || catch(body).map_err(Into::into))
            })
            .collect()
    }

    /// Runs the one test named `name` (`policy::module::test`) here and now: `None` if there is
    /// no such test, else its outcome (`Err` with the failure's message).
    pub fn run_test(&self, name: &str) -> Option<Result<(), String>> {
        let (_, body) = self.cases().into_iter().find(|(n, _)| n == name)?;
        Some(catch(body))
    }

    /// Runs the tests selected by the command line (libtest's arguments) and exits with
    /// libtest's status: 0 when all passed.
    ///
    /// Many tests make tasks panic on purpose; their panic messages are not printed (a failing
    /// test reports its own message). Set `CONFORMANCE_SHOW_PANICS=1` to see every panic.
    pub fn run(self) -> ! {
        let args = libtest_mimic::Arguments::from_args();
        if std::env::var_os("CONFORMANCE_SHOW_PANICS").is_none() {
            std::panic::set_hook(Box::new(|_| {}));
        }
        libtest_mimic::run(&args, self.trials()).exit()
    }
}

/// Runs a test body; a failed test is a panic, reported by its message. The next test starts
/// from fresh runtimes, so nothing it left half-done is observed.
fn catch(body: Box<dyn FnOnce() + Send>) -> Result<(), String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(body))
        .map_err(|p| util::panic_message(&*p))
}

/// The names of every test in the kit (without a policy prefix), for tools and for the kit's
/// own check that nothing is registered twice.
pub fn test_names() -> Vec<&'static str> {
    let names = table::CORE.iter().map(|(n, _)| *n);
    #[cfg(feature = "full")]
    let names = names.chain(table::FULL.iter().map(|(n, _)| *n));
    #[cfg(feature = "console")]
    let names = names.chain(table::CONSOLE.iter().map(|(n, _)| *n));
    names.collect()
}
