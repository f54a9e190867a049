//! `block_on` in current-thread mode: the calling thread becomes worker 0 and polls the main
//! future between tasks; the main future's waker.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};

use crate::shared::Shared;
use crate::sync::lock_unpoisoned as lock;
use crate::worker::MainTask;

/// Runs `future` on this thread as worker 0 of the current-thread runtime `shared`, or, while
/// another thread drives it, polls `future` alone until the worker is free.
pub(crate) fn block_on_current_thread<F: Future>(shared: &Arc<Shared>, future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let waker_state = Arc::new(MainWaker {
        woken: AtomicBool::new(true),
        thread: thread::current(),
        shared: shared.clone(),
    });
    let waker = Waker::from(waker_state.clone());
    loop {
        if let Some(driving) = CtDriving::claim(shared) {
            let mut main = Main {
                future: future.as_mut(),
                state: &waker_state,
                waker: &waker,
                output: None,
                panic: None,
            };
            crate::shared::drive(shared, 0, Some(&mut main));
            // Worker 0 is free again (for the next `block_on`) before the main future's
            // panic, if any, goes on.
            drop(driving);
            if let Some(p) = main.panic {
                std::panic::resume_unwind(p);
            }
            if let Some(out) = main.output {
                return out;
            }
            panic!("the runtime was shut down while `block_on` was running");
        }
        // Another thread drives the runtime: poll our future here until it completes or the
        // worker becomes free.
        lock(&shared.ct_waiters).push(thread::current());
        if waker_state.woken.swap(false, Ordering::AcqRel) {
            let mut cx = Context::from_waker(&waker);
            if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                return out;
            }
        }
        if *lock(&shared.ct_driven) {
            thread::park();
        }
    }
}

/// Worker 0 of a current-thread runtime, claimed by one `block_on`; released (and the threads
/// waiting for it woken) when dropped.
struct CtDriving<'a>(&'a Shared);

impl<'a> CtDriving<'a> {
    fn claim(shared: &'a Shared) -> Option<CtDriving<'a>> {
        let mut driven = lock(&shared.ct_driven);
        if *driven {
            return None;
        }
        *driven = true;
        Some(CtDriving(shared))
    }
}

impl Drop for CtDriving<'_> {
    fn drop(&mut self) {
        *lock(&self.0.ct_driven) = false;
        for t in lock(&self.0.ct_waiters).drain(..) {
            t.unpark();
        }
    }
}

struct MainWaker {
    woken: AtomicBool,
    thread: Thread,
    shared: Arc<Shared>,
}

impl Wake for MainWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.shared.parking.unpark(0);
            self.thread.unpark();
        }
    }
}

struct Main<'a, T> {
    future: Pin<&'a mut dyn Future<Output = T>>,
    state: &'a MainWaker,
    waker: &'a Waker,
    output: Option<T>,
    panic: Option<crate::worker::Panic>,
}

impl<T> MainTask for Main<'_, T> {
    fn take_woken(&self) -> bool {
        self.state.woken.load(Ordering::Acquire) && self.state.woken.swap(false, Ordering::AcqRel)
    }

    fn poll(&mut self) -> bool {
        let mut cx = Context::from_waker(self.waker);
        let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.future.as_mut().poll(&mut cx)
        }));
        match polled {
            Ok(Poll::Ready(v)) => {
                self.output = Some(v);
                true
            }
            Ok(Poll::Pending) => false,
            Err(p) => {
                self.panic = Some(p);
                true
            }
        }
    }

    fn finished(&self) -> bool {
        self.output.is_some() || self.panic.is_some()
    }
}
