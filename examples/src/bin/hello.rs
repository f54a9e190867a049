//! The smallest program: one line runs a future on the default runtime.
//!
//! Run: `cargo run -p examples --bin hello`

fn main() {
    facade::block_on(async { println!("hello from the pluggable-scheduler runtime") });
}
