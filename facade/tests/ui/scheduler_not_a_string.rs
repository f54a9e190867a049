#[facade::main(scheduler = fifo)]
async fn main() {}
