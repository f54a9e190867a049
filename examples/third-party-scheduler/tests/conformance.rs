//! The whole conformance kit, core and full tier, on this crate's policy.

use conformance::{Kit, Policy};
use home_affinity::HomeAffinity;

fn main() {
    Kit::new()
        .policy(Policy::new("home_affinity", HomeAffinity::default))
        .run()
}
