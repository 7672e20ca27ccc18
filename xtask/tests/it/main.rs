//! xtask's end-to-end tests: `deploy` against a real sshd, `new-driver` in a copy of the
//! workspace, `build` into another target directory. (The architecture invariants are in
//! `tidy.rs`.)

#![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

mod build;
mod deploy;
mod new_driver;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Held by every test that runs cargo on the workspace's `target/`: the new-driver tests build
/// copies of the workspace there (for its compiled dependencies), and cargo names a copy's
/// crates as it names the originals, so a copy built meanwhile would replace what a deploy is
/// building from, and two deploys of one build would differ.
fn target_dir_lock() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The workspace root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_owned()
}

/// A port that was free a moment ago on 127.0.0.1.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A new empty directory under the system temp dir, unique to this process and name.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("busgate-xtask-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
