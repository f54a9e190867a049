#!/usr/bin/env bash
# ThreadSanitizer over the conformance kit and runtime-core's tests (nightly, -Zbuild-std).
# std and every dependency are rebuilt with the sanitizer: about ten minutes on two cores.
# `.ci/run` runs it when nightly is there; by hand: `bash tools/tsan.sh [cargo test args]`.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup +nightly component add rust-src >/dev/null
target=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Zsanitizer=thread"
export RUSTDOCFLAGS="-Zsanitizer=thread"
export TSAN_OPTIONS="suppressions=$PWD/tools/tsan.supp halt_on_error=1 second_deadlock_stack=1"
export CARGO_TARGET_DIR=target/tsan
cargo +nightly test -Zbuild-std --target "$target" -p runtime-core -p conformance --lib --tests "$@"
