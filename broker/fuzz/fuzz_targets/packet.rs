//! Fuzzes the packet path: arbitrary bytes from a client go through the gate (strict frame
//! check, login, access rules) and rumqttd's MQTT 3.1.1 decoder, as on a connection, with
//! answers written back through the gate. Nothing may panic, and every call must either make
//! progress or ask for more bytes.

#![no_main]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use broker::gate::{Admission, Counters, Gate};
use broker::policy::Policy;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rumqttd::protocol::v4::V4;
use rumqttd::protocol::{ConnAck, ConnectReturnCode, Packet, PingResp, Protocol};

fn admission() -> Admission {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    let policy = POLICY.get_or_init(|| {
        // A user with rules, so that the access checks run too (password "fuzz").
        let board = "[board]\nname = \"fuzz\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\
            [broker.listeners.local]\naddress = \"127.0.0.1:1883\"\nanonymous = true\n\
            [broker.users.user]\npassword_hash = \"$argon2id$v=19$m=19456,t=2,p=1$C/hfe9yZ27BlrDREEMOkBw$WSl5vf3zPyKdzEbHN17mOHExF0Yhr7GumqnjYeBtMCQ\"\n\
            publish = [\"a/%c/#\"]\nsubscribe = [\"a/+/b\"]\n";
        let board = board::Board::parse(board, Path::new("fuzz.toml")).expect("the fuzz board parses");
        Arc::new(Policy::from_board(&board).expect("the fuzz policy loads"))
    });
    Admission {
        listener: "local".into(),
        anonymous: true,
        max_keepalive_s: 600,
        max_connections: 8,
        policy: policy.clone(),
        counters: Arc::new(Counters::default()),
        retained: None,
        preamble: None,
    }
}

fuzz_target!(|data: &[u8]| {
    let mut gate = Gate::new(V4, admission());
    let mut stream = BytesMut::from(data);
    let mut out = BytesMut::new();
    for _ in 0..1000 {
        match gate.read_mut(&mut stream, 4096) {
            Ok(packet) => {
                // Answer as rumqttd would, so the write side runs too.
                let answer = match packet {
                    Packet::Connect(..) => Some(Packet::ConnAck(
                        ConnAck { session_present: false, code: ConnectReturnCode::Success },
                        None,
                    )),
                    Packet::PingReq(_) => Some(Packet::PingResp(PingResp)),
                    _ => None,
                };
                if let Some(answer) = answer {
                    let _ = gate.write(answer, &mut out);
                }
            }
            Err(_) => break,
        }
    }
});
