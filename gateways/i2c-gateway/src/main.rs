//! I2C gateway (work in progress).
fn main() {}
