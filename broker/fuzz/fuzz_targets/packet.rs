//! Fuzzes the connection path: arbitrary bytes from a client go through a whole connection as
//! the broker serves it (strict frame check, the engine's decoder, login, access rules,
//! sessions and their acknowledgements, the router link), over an in-memory stream. Nothing may
//! panic, and every connection must end once its input does.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use broker::connection::{Door, Engine, serve};
use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

fn runtime() -> &'static (tokio::runtime::Runtime, Arc<Engine>) {
    static RUNTIME: OnceLock<(tokio::runtime::Runtime, Arc<Engine>)> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("a runtime");
        // A user with rules, so that the access checks run too (password "fuzz").
        let board = "[board]\nname = \"fuzz\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\
            [broker.listeners.local]\naddress = \"127.0.0.1:1883\"\nanonymous = true\n\
            [broker.users.user]\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$C/hfe9yZ27BlrDREEMOkBw$WSl5vf3zPyKdzEbHN17mOHExF0Yhr7GumqnjYeBtMCQ\"\n\
            publish = [\"a/%c/#\"]\nsubscribe = [\"a/+/b\"]\n";
        let board = board::Board::parse(board, Path::new("fuzz.toml")).expect("the fuzz board parses");
        let engine = runtime.block_on(async { broker::standalone_engine(&board).expect("the fuzz engine starts") });
        (runtime, engine)
    })
}

fuzz_target!(|data: &[u8]| {
    let (runtime, engine) = runtime();
    runtime.block_on(async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let door = Door { listener: Arc::from("local"), anonymous: true, peer_user: None, peer: "fuzz".into() };
        let serving = tokio::spawn(serve(engine.clone(), door, server));
        let _ = client.write_all(data).await;
        let _ = client.shutdown().await;
        let mut sink = Vec::new();
        let _ = client.read_to_end(&mut sink).await;
        let ended = tokio::time::timeout(Duration::from_secs(10), serving).await;
        assert!(matches!(ended, Ok(Ok(()))), "the connection did not end, or panicked");
    });
});
