//! The busgate broker (work in progress).
fn main() {}
