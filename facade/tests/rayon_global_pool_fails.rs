//! `spawn_rayon` when rayon's global pool cannot start (here: its build is made to fail, as a
//! refused thread would): a clear error through the `JoinHandle`, from a task and from
//! `block_on`, and the runtime goes on. A test binary of its own: rayon's global pool is
//! process-wide.

#[test]
fn spawn_rayon_fails_clearly_when_rayon_cannot_start() {
    let refused = rayon::ThreadPoolBuilder::new()
        .spawn_handler(|_| Err(std::io::Error::other("injected: no threads")))
        .build_global();
    assert!(refused.is_err());
    let rt = facade::Builder::new().worker_threads(1).build().unwrap();
    // From block_on's future.
    let e = rt
        .block_on(async { facade::spawn_rayon(|| 1).await })
        .unwrap_err();
    let msg = e.to_string();
    assert!(
        e.is_panic() && msg.contains("could not start rayon's global thread pool"),
        "{msg}"
    );
    assert!(msg.contains("rayon_threads"), "says what to do: {msg}");
    // From a task.
    let e = rt
        .block_on(async { facade::spawn(async { facade::spawn_rayon(|| 2).await }).await })
        .unwrap()
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("could not start rayon's global thread pool"),
        "{e}"
    );
    // The runtime goes on; a runtime with a pool of its own still has rayon.
    assert_eq!(
        rt.block_on(async { facade::spawn(async { 3 }).await })
            .unwrap(),
        3
    );
    let own = facade::Builder::new()
        .worker_threads(1)
        .rayon_threads(1)
        .build()
        .unwrap();
    assert_eq!(
        own.block_on(async { facade::spawn_rayon(|| 4).await })
            .unwrap(),
        4
    );
}
