//! busgate automation (work in progress).
fn main() {}
