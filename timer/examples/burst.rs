//! The wheel alone through a burst: 100,000 timers with deadlines spread over 1-50 ms of
//! ticks, polled every 10 ticks until all have fired, each firing touching a 64-byte "task"
//! of its own (as a waker would): the median and the best of 40 rounds.
//!
//! ```text
//! cargo run --release -p timer --example burst
//! ```
//!
//! For an A/B, build it in each tree and run the two binaries in turns (`taskset -c 0`): the
//! medians of one process move with the machine.

use std::time::Instant;

fn main() {
    let n = 100_000usize;
    let mut tasks = vec![0u64; n * 8];
    let mut times = Vec::new();
    for round in 0..41 {
        let mut rng = 0x2545_F491_4F6C_DD1Du64 ^ round;
        // A waker's size: the wheel's entries are as large as in a runtime.
        let mut wheel = timer::Wheel::<[usize; 2]>::new();
        for i in 0..n {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            wheel.insert(1_000 + rng % 49_000, [i, 0]);
        }
        let start = Instant::now();
        let mut now = 0;
        let mut sum = 0u64;
        while !wheel.is_empty() {
            now += 10;
            wheel.poll(now, |v| {
                let task = &mut tasks[v[0] * 8];
                *task += 1;
                sum = sum.wrapping_add(*task);
            });
        }
        std::hint::black_box(sum);
        // The first round warms the allocator and the tasks up.
        if round > 0 {
            times.push(start.elapsed().as_secs_f64() * 1e3);
        }
    }
    times.sort_by(f64::total_cmp);
    println!(
        "median {:.3} ms, min {:.3} ms",
        times[times.len() / 2],
        times[0]
    );
}
