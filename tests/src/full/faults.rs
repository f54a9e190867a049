//! Faults the runtime must survive, injected: each test makes something that is not the
//! runtime's own code fail, and asserts that the runtime reports it (a `tracing` ERROR and
//! `RuntimeMetrics::caught_panics`) and keeps working.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Wake, Waker};
use std::time::Duration;

use facade::net::UnixStream;
use facade::time;
use futures_lite::{AsyncReadExt, AsyncWriteExt};

use crate::Make;
use crate::util::{Captured, LIMIT, within};

/// A waker that panics when woken.
struct PanicsWhenWoken;

impl Wake for PanicsWhenWoken {
    fn wake(self: Arc<Self>) {
        panic!("injected: this waker panics");
    }
}

fn panicking_waker() -> Waker {
    Waker::from(Arc::new(PanicsWhenWoken))
}

/// Polls `fut` once with a waker that panics when woken.
fn poll_with_panicking_waker<F: std::future::Future>(fut: Pin<&mut F>) {
    let waker = panicking_waker();
    assert!(fut.poll(&mut Context::from_waker(&waker)).is_pending());
}

/// A timer whose waker panics when the driver fires it: the panic is caught and reported,
/// and timers and tasks keep working (the driver's lock is not poisoned, no worker dies).
pub fn a_panicking_timer_waker_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let (captured, _guard) = Captured::install_at(tracing::Level::ERROR);
            let rt = make(workers).build().unwrap();
            rt.block_on(async {
                let mut doomed = Box::pin(time::sleep(Duration::from_millis(2)));
                poll_with_panicking_waker(doomed.as_mut());
                time::sleep(Duration::from_millis(20)).await;
                drop(doomed);
                // Still working: timers, tasks, tasks woken by timers.
                for _ in 0..3 {
                    facade::spawn(time::sleep(Duration::from_millis(2)))
                        .await
                        .unwrap();
                }
            });
            let m = rt.metrics();
            assert!(m.caught_panics >= 1, "{workers} workers: {m:?}");
            let lines = captured.lines();
            assert!(
                lines.iter().any(|l| l.starts_with("ERROR")
                    && l.contains("timer")
                    && l.contains("injected")),
                "{workers} workers: {lines:#?}"
            );
        }
    });
}

/// An I/O wait whose waker panics when the reactor reports readiness: caught, reported, and
/// the socket and the runtime keep working.
pub fn a_panicking_io_waker_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let (captured, _guard) = Captured::install_at(tracing::Level::ERROR);
            let rt = make(workers).build().unwrap();
            rt.block_on(async {
                let (mut a, mut b) = UnixStream::pair().unwrap();
                let mut buf = [0u8; 1];
                {
                    let mut read = Box::pin(a.read(&mut buf));
                    poll_with_panicking_waker(read.as_mut());
                    b.write_all(b"x").await.unwrap();
                    time::sleep(Duration::from_millis(20)).await;
                }
                // The byte is still there, and the pair still works both ways.
                a.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"x");
                a.write_all(b"y").await.unwrap();
                b.read_exact(&mut buf).await.unwrap();
                assert_eq!(&buf, b"y");
            });
            let m = rt.metrics();
            assert!(m.caught_panics >= 1, "{workers} workers: {m:?}");
            let lines = captured.lines();
            assert!(
                lines
                    .iter()
                    .any(|l| l.starts_with("ERROR") && l.contains("I/O") && l.contains("injected")),
                "{workers} workers: {lines:#?}"
            );
        }
    });
}

/// A join handle polled with a waker that panics when woken (kept in the task's one-word
/// awaiter slot, boxed since it is not a task's), then the task completes on a worker: the
/// runtime survives the panic, and tasks and join handles keep working.
pub fn a_panicking_join_handle_waker_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            rt.block_on(async {
                let (tx, rx) = std::sync::mpsc::channel::<()>();
                let mut handle = facade::spawn(async move {
                    time::sleep(Duration::from_millis(5)).await;
                    drop(tx);
                    7
                });
                poll_with_panicking_waker(Pin::new(&mut handle));
                time::sleep(Duration::from_millis(30)).await;
                assert!(rx.try_recv().is_err(), "the task ran to its end");
                assert!(handle.is_finished());
                // Still working: tasks and their join handles.
                for i in 0..3 {
                    assert_eq!(facade::spawn(async move { i }).await.unwrap(), i);
                }
                assert_eq!(handle.await.unwrap(), 7);
            });
            let m = rt.metrics();
            assert!(m.caught_panics >= 1, "{workers} workers: {m:?}");
        }
    });
}

/// A waker whose destructor panics.
struct PanicsWhenDropped;

impl Wake for PanicsWhenDropped {
    fn wake(self: Arc<Self>) {}
}

impl Drop for PanicsWhenDropped {
    fn drop(&mut self) {
        panic!("injected: this waker's destructor panics");
    }
}

/// A join handle polled once with a waker whose destructor panics, then dropped after its task
/// finished: the waker stays in the task's cell until the last reference to the cell goes,
/// which is the registry's, given back by the worker in a later spawn or as it parks (the task
/// was spawned by a task, on a worker). The panic is caught and reported, that spawn and the
/// spawning task go on, and the runtime keeps working.
pub fn a_join_handle_waker_that_panics_when_dropped_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            let out = rt.block_on(rt.spawn(async {
                // The task waits for the go, so that the handle's poll finds it unfinished.
                let (go, wait) = crate::util::oneshot::<()>();
                let mut handle = facade::spawn(async move {
                    let _ = wait.await;
                    7
                });
                {
                    let waker = Waker::from(Arc::new(PanicsWhenDropped));
                    let mut cx = Context::from_waker(&waker);
                    // The handle keeps a clone as its awaiter: this one goes without the panic,
                    // the clone (the last) with it.
                    assert!(Pin::new(&mut handle).poll(&mut cx).is_pending());
                }
                go.send(());
                while !handle.is_finished() {
                    facade::yield_now().await;
                }
                drop(handle);
                // More spawns than a nursery's first table holds, in a row, on this worker.
                let more: Vec<_> = (0..20).map(|i| facade::spawn(async move { i })).collect();
                let mut sum = 0;
                for h in more {
                    sum += h.await.unwrap();
                }
                sum
            }));
            assert_eq!(
                out.unwrap(),
                190,
                "{workers} workers: the spawning task went on"
            );
            assert_eq!(
                rt.block_on(async { facade::spawn(async { 1 }).await })
                    .unwrap(),
                1
            );
            // With two workers the spawning task may have moved to the other worker after the
            // first spawn: the first worker then gives the entry back when it parks.
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while rt.metrics().caught_panics == 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            let m = rt.metrics();
            assert!(m.caught_panics >= 1, "{workers} workers: {m:?}");
        }
    });
}

/// An output whose destructor panics.
struct OutputPanicsWhenDropped;

impl Drop for OutputPanicsWhenDropped {
    fn drop(&mut self) {
        panic!("injected: this task's output panics in its destructor");
    }
}

/// A detached task (its handle dropped before it ends) whose output's destructor panics: the
/// output is dropped as the task completes, on the worker. The panic is caught and reported,
/// the task's cell is freed, and the runtime keeps working.
pub fn a_detached_tasks_output_that_panics_when_dropped_is_contained(make: Make) {
    within(LIMIT, move || {
        for workers in [0, 2] {
            let rt = make(workers).build().unwrap();
            rt.block_on(async {
                let (go, wait) = crate::util::oneshot::<()>();
                drop(facade::spawn(async move {
                    let _ = wait.await;
                    OutputPanicsWhenDropped
                }));
                go.send(());
                let deadline = std::time::Instant::now() + Duration::from_secs(5);
                while facade::Handle::current().metrics().tasks_alive > 0
                    && std::time::Instant::now() < deadline
                {
                    time::sleep(Duration::from_millis(1)).await;
                }
                for i in 0..3 {
                    assert_eq!(facade::spawn(async move { i }).await.unwrap(), i);
                }
            });
            let m = rt.metrics();
            assert!(m.caught_panics >= 1, "{workers} workers: {m:?}");
            assert_eq!(m.tasks_alive, 0, "{workers} workers: {m:?}");
            assert!(
                m.ejection.is_none(),
                "{workers} workers: the panic is the task's, not the policy's: {m:?}"
            );
            assert_eq!(
                rt.block_on(async { facade::spawn(async { 1 }).await })
                    .unwrap(),
                1
            );
        }
    });
}
