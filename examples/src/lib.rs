//! Runnable starting points (`cargo run -p examples --bin NAME`), and the example policy they
//! share with the conformance kit.

pub mod round_robin;
