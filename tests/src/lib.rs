//! The conformance suite: the same tests for every scheduler.
//!
//! [`conformance_suite!`] instantiates every test in [`suite`] for one scheduler, in a module
//! named after it, so `cargo test -p conformance fifo` runs FIFO's suite (`fifo::spawn_join`,
//! …). Adding a scheduler to the suite is one line in `tests/schedulers.rs`.

pub mod blocking_pool;
pub mod io_time;
pub mod suite;
pub mod util;
pub mod watchdog;

/// `conformance_suite!(name, |workers| builder)` generates module `name` with one `#[test]` per
/// conformance test, each building its runtimes with the given closure.
#[macro_export]
macro_rules! conformance_suite {
    ($name:ident, $make:expr) => {
        mod $name {
            fn make(workers: usize) -> facade::Builder {
                let f: fn(usize) -> facade::Builder = $make;
                f(workers)
            }
            $crate::conformance_suite!(@tests
                spawn_join, many_tasks, nested_spawn, spawn_from_foreign_thread,
                wake_from_foreign_thread, yield_fairness, panic_gives_join_error, abort, detach,
                current_thread, shutdown_drops_every_future_once, block_on_inside_runtime_fails,
                spawn_outside_runtime_fails, spawn_after_shutdown_is_cancelled,
                shutdown_timeout_does_not_wait_for_a_stuck_worker, shutdown_background_returns,
                drop_while_panicking, metrics_count_tasks, ping_pong,
                task_names_and_priorities_are_carried,
                priorities_are_carried_inherited_and_changeable
            );
            $crate::conformance_suite!(@io_tests
                tcp_echo_100_connections, udp_round_trip, unix_stream_pair,
                accept_loop_survives_a_client_that_disconnects_mid_write,
                timeout_on_a_read_that_never_completes,
                timers_fire_in_deadline_order_never_early, cancelled_timers_free_their_slots,
                timer_fires_while_workers_are_busy, readiness_not_lost_during_a_poll,
                io_after_shutdown_and_outside_a_runtime, interval_missed_tick_behaviours,
                many_short_sleeps_all_complete, host_names_resolve_on_the_blocking_pool
            );
            $crate::conformance_suite!(@blocking_tests
                spawn_blocking_results_and_panics, blocking_pool_never_exceeds_its_maximum,
                idle_blocking_threads_retire, shutdown_timeout_bounds_running_blocking_jobs,
                spawn_dedicated_outlives_and_is_outlived,
                spawn_rayon_par_iter_without_blocking_workers
            );
            $crate::conformance_suite!(@watchdog_tests
                watchdog_reports_each_blocking_poll,
                tasks_queued_behind_a_stuck_worker_run_elsewhere
            );
        }
    };
    (@watchdog_tests $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::watchdog::$test(make);
            }
        )*
    };
    (@blocking_tests $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::blocking_pool::$test(make);
            }
        )*
    };
    (@io_tests $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::io_time::$test(make);
            }
        )*
    };
    (@tests $($test:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $crate::suite::$test(make);
            }
        )*
    };
}
