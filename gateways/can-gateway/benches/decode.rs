//! DBC decode plus JSON encoding per frame, as the gateway does it for every frame it publishes:
//! look the identifier up, decode the signals, write the message payload. Target: under 2 us
//! per frame (cantools takes about 30 us). Run with `cargo bench -p can-gateway --bench decode`.

#![allow(clippy::unwrap_used, reason = "a benchmark fails loudly")]

use std::hint::black_box;
use std::time::SystemTime;

use buses::can::CanFrame;
use can_gateway::decoder::{self, Decoder, Lookup};
use criterion::{Criterion, criterion_group, criterion_main};

fn frames() -> Vec<CanFrame> {
    vec![
        // EngineStatus: 5 signals, Intel and Motorola.
        CanFrame::classic(0x100, false, &[0xa0, 0x0f, 0x64, 0x80, 0x03, 0x84, 0x00, 0x50]).unwrap(),
        // BatteryStatus: 29-bit identifier, signed.
        CanFrame::classic(0x18FF_50E5, true, &[0xb0, 0x04, 0x9c, 0xff, 0x90, 0x5a, 0, 0]).unwrap(),
        // VehicleMotion: a value-table label.
        CanFrame::classic(0x101, false, &[0x12, 0x34, 0x10, 0x00, 0x03, 0x20, 0x03, 0x00]).unwrap(),
        // Diagnostics: 64-byte FD, multiplexed, float signals.
        CanFrame::fd(
            0x300,
            false,
            true,
            &[[1u8, 0x40, 0x41, 0, 0, 0x00, 0x00, 0x60, 0x41].as_slice(), &[0; 55]].concat(),
        )
        .unwrap(),
    ]
}

fn bench(c: &mut Criterion) {
    let (decoder, warnings) = Decoder::load("can0", &["../../boards/dbc/busgate-demo.dbc"]).unwrap();
    assert!(warnings.is_empty(), "{warnings:?}");
    let frames = frames();
    let at = SystemTime::now();
    let mut out = Vec::with_capacity(1024);
    let mut decoded = Vec::with_capacity(16);
    let mut group = c.benchmark_group("decode+json");
    for frame in &frames {
        let Lookup::Message { message, .. } = decoder.lookup(frame) else { panic!("{frame:?} is in the demo DBC") };
        group.bench_function(message.name.as_str(), |b| {
            b.iter(|| {
                let Lookup::Message { message, .. } = decoder.lookup(black_box(frame)) else { unreachable!() };
                let _ = message.decode(frame.data(), &mut decoded);
                decoder::write_message(&mut out, "can0", message, &decoded, at, 42, frame.is_fd());
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
