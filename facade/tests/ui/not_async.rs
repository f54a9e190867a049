#[facade::main]
fn main() {}
