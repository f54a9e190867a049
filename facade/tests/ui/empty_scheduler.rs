#[facade::test(scheduler = "")]
async fn t() {}

fn main() {}
