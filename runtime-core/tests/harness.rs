//! The task harness and the unsafe paths of core (pinned wrapper future, metadata pointer of
//! `JoinHandle`, the worker-local state cast), small enough to run under Miri:
//! `cargo +nightly miri test -p runtime-core`.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use runtime_core::{
    Config, Handle, Notify, Priority, Runnable, Runtime, ScheduleInfo, ScheduleReason, Scheduler,
    SpawnOptions,
};

/// FIFO with a per-worker local queue, so that scheduling from a worker goes through the
/// worker-local path (and its `RefCell` borrow).
#[derive(Default)]
struct LocalFirst {
    global: Mutex<VecDeque<Runnable>>,
    local_pushes: AtomicUsize,
}

impl Scheduler for LocalFirst {
    type Local = VecDeque<Runnable>;
    fn new_local(&self, _: usize) -> Self::Local {
        VecDeque::new()
    }
    fn schedule(
        &self,
        task: Runnable,
        info: ScheduleInfo,
        local: Option<&mut Self::Local>,
    ) -> Notify {
        match local {
            Some(l) if info.reason != ScheduleReason::Yield => {
                self.local_pushes.fetch_add(1, Ordering::Relaxed);
                l.push_back(task);
                // The calling worker is awake and looks at its own queue first.
                Notify::None
            }
            _ => {
                self.global.lock().unwrap().push_back(task);
                Notify::Any
            }
        }
    }
    fn next(&self, _: usize, local: &mut Self::Local) -> Option<Runnable> {
        local
            .pop_front()
            .or_else(|| self.global.lock().unwrap().pop_front())
    }
}

fn runtime(workers: usize) -> Runtime {
    Runtime::new(
        LocalFirst::default(),
        Config {
            worker_threads: workers,
            ..Config::default()
        },
    )
    .unwrap()
}

struct CountDrop(Arc<AtomicUsize>);
impl Drop for CountDrop {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Pending forever, counting its drop.
struct Forever(#[allow(dead_code)] CountDrop);
impl Future for Forever {
    type Output = ();
    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        Poll::Pending
    }
}

#[test]
fn join_abort_panic_and_metadata() {
    for workers in [0, 1] {
        let rt = runtime(workers);
        let drops = Arc::new(AtomicUsize::new(0));
        let d = drops.clone();
        rt.block_on(async move {
            let h = Handle::try_current().unwrap();
            // Spawned from the worker (or block_on) thread: local path.
            let a = h.spawn(async { 1 + 1 });
            assert_eq!(a.await.unwrap(), 2);

            let named = h.spawn_with(
                Forever(CountDrop(d.clone())),
                SpawnOptions {
                    name: Some("forever".into()),
                    priority: Some(Priority::LOW),
                },
            );
            let meta = named.metadata().unwrap();
            assert_eq!(meta.name(), Some("forever"));
            meta.set_priority(Priority::HIGH);
            assert_eq!(named.metadata().unwrap().priority(), Priority::HIGH);
            runtime_core::yield_now().await;
            named.abort();
            assert!(named.await.unwrap_err().is_cancelled());
            assert_eq!(d.load(Ordering::SeqCst), 1);

            // The current task's metadata, read through the thread-local pointer (unsafe code
            // that Miri checks here), and inherited by a task it spawns.
            let inner = h.clone();
            let prio = h
                .spawn_with(
                    async move {
                        let mine = runtime_core::current_priority();
                        assert!(runtime_core::set_current_priority(Priority::CRITICAL));
                        let child = inner.spawn(async { runtime_core::current_priority() });
                        (mine, child.await.unwrap())
                    },
                    SpawnOptions {
                        name: None,
                        priority: Some(Priority::HIGH),
                    },
                )
                .await
                .unwrap();
            assert_eq!(prio, (Some(Priority::HIGH), Some(Priority::CRITICAL)));
            assert_eq!(
                runtime_core::current_priority(),
                None,
                "not inside a task here"
            );

            let p = h.spawn(async { panic!("expected panic") });
            let e = p.await.unwrap_err();
            assert!(e.is_panic());
            assert!(e.to_string().contains("expected panic"));
        });
        // Shutdown drops queued and idle futures once.
        for _ in 0..3 {
            drop(rt.spawn(Forever(CountDrop(drops.clone()))));
        }
        drop(rt);
        assert_eq!(drops.load(Ordering::SeqCst), 4);
    }
}

#[test]
fn wake_from_another_thread() {
    let rt = runtime(1);
    let slot: Arc<Mutex<Option<std::task::Waker>>> = Arc::default();
    let ready = Arc::new(AtomicUsize::new(0));
    let (s, r) = (slot.clone(), ready.clone());
    let h = rt.spawn(std::future::poll_fn(move |cx| {
        if r.load(Ordering::SeqCst) == 1 {
            return Poll::Ready(7);
        }
        *s.lock().unwrap() = Some(cx.waker().clone());
        Poll::Pending
    }));
    let t = std::thread::spawn(move || {
        loop {
            if let Some(w) = slot.lock().unwrap().take() {
                ready.store(1, Ordering::SeqCst);
                w.wake();
                return;
            }
            std::thread::yield_now();
        }
    });
    assert_eq!(rt.block_on(h).unwrap(), 7);
    t.join().unwrap();
}

#[test]
fn join_handle_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<runtime_core::JoinHandle<u32>>();
    check::<runtime_core::JoinError>();
    check::<Handle>();
}

/// A policy whose `next` panics once: the runtime ejects it (the unsafe hand-over in
/// policy.rs), reschedules what it holds on the fallback, drops it, and goes on.
#[test]
fn a_policy_that_panics_is_ejected_and_dropped() {
    struct PanicsOnce(runtime_core::BasicFifo, AtomicUsize, Arc<AtomicUsize>);
    impl Drop for PanicsOnce {
        fn drop(&mut self) {
            self.2.fetch_add(1, Ordering::SeqCst);
        }
    }
    impl Scheduler for PanicsOnce {
        type Local = ();
        fn new_local(&self, _: usize) {}
        fn schedule(&self, t: Runnable, i: ScheduleInfo, _: Option<&mut ()>) -> Notify {
            self.0.schedule(t, i, None)
        }
        fn next(&self, w: usize, _: &mut ()) -> Option<Runnable> {
            if self.1.fetch_add(1, Ordering::SeqCst) == 3 {
                panic!("injected");
            }
            self.0.next(w, &mut ())
        }
    }
    for workers in [0, 1] {
        let dropped = Arc::new(AtomicUsize::new(0));
        let policy = PanicsOnce(Default::default(), AtomicUsize::new(0), dropped.clone());
        // Kept by a hook, so by the runtime's shared state: freed with it.
        let marker = Arc::new(());
        let m = marker.clone();
        let hooks = runtime_core::hooks::RuntimeHooks {
            on_thread_park: Some(Arc::new(move |_| drop(m.clone()))),
            ..Default::default()
        };
        let rt = Runtime::new(
            policy,
            Config {
                worker_threads: workers,
                hooks,
                ..Config::default()
            },
        )
        .unwrap();
        let n = if cfg!(miri) { 5 } else { 50 };
        let sum: usize = rt.block_on(async {
            let h = Handle::try_current().unwrap();
            let tasks: Vec<_> = (0..n).map(|i| h.spawn(async move { i })).collect();
            let mut sum = 0;
            for t in tasks {
                sum += t.await.unwrap();
            }
            sum
        });
        assert_eq!(sum, n * (n - 1) / 2);
        let e = rt.metrics().ejection.expect("ejected");
        assert!(e.reason.contains("injected"), "{e:?}");
        assert_eq!(rt.handle().scheduler_name(), "basic-fifo");
        assert_eq!(
            dropped.load(Ordering::SeqCst),
            1,
            "the ejected policy is dropped"
        );
        assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);
        // A task spawned on a worker after the ejection (its registry entry in the worker's
        // nursery), waiting for ever, is still dropped when the runtime is.
        struct Flag(Arc<AtomicUsize>);
        impl Drop for Flag {
            fn drop(&mut self) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let gone = Arc::new(AtomicUsize::new(0));
        let flag = Flag(gone.clone());
        rt.block_on(async move {
            let h = Handle::try_current().unwrap();
            let waiter = h.spawn(async move {
                let _flag = flag;
                std::future::pending::<()>().await
            });
            runtime_core::yield_now().await;
            drop(waiter);
        });
        drop(rt);
        assert_eq!(
            gone.load(Ordering::SeqCst),
            1,
            "dropped at shutdown ({workers} workers)"
        );
        // Nothing keeps the runtime alive: no task's registry entry outlived the shutdown (each
        // entry holds its task, which holds the runtime).
        assert_eq!(
            Arc::strong_count(&marker),
            1,
            "the runtime is freed ({workers} workers)"
        );
    }
}
