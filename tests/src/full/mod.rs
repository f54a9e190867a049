//! The full tier: the runtime around the policy (I/O, timers, blocking work, the watchdog,
//! shutdown, misuse), through `facade`.

pub mod blocking_pool;
pub mod chaos;
#[cfg(feature = "console")]
pub mod console;
pub mod faults;
pub mod http;
pub mod io_time;
pub mod observe;
pub mod suite;
pub mod toolbox;
pub mod watchdog;
