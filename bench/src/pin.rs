//! `--pin-ct CPU`: the one-thread runtimes' samples of the scheduling workloads run with the
//! harness's thread on one CPU.
//!
//! On a host whose CPUs run at different speeds (a shared virtual machine: on one, every
//! runtime ran 1.7x slower on its second CPU), an unpinned one-thread runtime lands on either,
//! sample by sample, and its ratio to another one-thread runtime measures the CPUs, not the
//! runtimes. `taskset` for the whole process would pin the multi-thread runtimes' workers too.
//! So the pin is taken around each such sample and the thread's own mask put back after it;
//! runtimes are built before any pin, so no worker thread inherits it. Only the scheduling
//! workloads are pinned: in the others a one-thread runtime may start a thread during the
//! sample (a blocking pool, a reactor), which would inherit the pin for good.

use std::io;
use std::mem;

/// The calling thread's CPU mask, to put back.
pub(crate) struct Pin {
    cpu: usize,
    free: libc::cpu_set_t,
}

impl Pin {
    /// Checks that `cpu` is one this thread may run on, and keeps the thread's current mask.
    pub(crate) fn new(cpu: usize) -> Result<Pin, String> {
        // SAFETY: a zeroed `cpu_set_t` is an empty set; the call writes at most its size.
        let free = unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            if libc::sched_getaffinity(0, mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Err(format!("--pin-ct: {}", io::Error::last_os_error()));
            }
            set
        };
        // SAFETY: `cpu` is checked against the set's size before the lookup.
        let allowed = cpu < libc::CPU_SETSIZE as usize && unsafe { libc::CPU_ISSET(cpu, &free) };
        if !allowed {
            return Err(format!(
                "--pin-ct {cpu}: not a CPU this process may run on (see `taskset -p $$`)"
            ));
        }
        Ok(Pin { cpu, free })
    }

    /// The CPU samples are pinned to.
    pub(crate) fn cpu(&self) -> usize {
        self.cpu
    }

    /// Runs `f` with the calling thread on the pinned CPU, then puts its mask back.
    pub(crate) fn run<T>(&self, f: impl FnOnce() -> T) -> T {
        // SAFETY: as in `new`; `self.cpu` was checked there.
        let one = unsafe {
            let mut set: libc::cpu_set_t = mem::zeroed();
            libc::CPU_SET(self.cpu, &mut set);
            set
        };
        set(&one);
        let out = f();
        set(&self.free);
        out
    }
}

fn set(mask: &libc::cpu_set_t) {
    // SAFETY: `mask` is a whole `cpu_set_t`, of the size passed.
    let r = unsafe { libc::sched_setaffinity(0, mem::size_of::<libc::cpu_set_t>(), mask) };
    // Allowed at `new`; a mask taken away since (by `taskset` from outside) is not ours to fix.
    if r != 0 {
        eprintln!("--pin-ct: {}", io::Error::last_os_error());
    }
}
