//! Decoding speed: message lookup and decode of every frame of the crate's own fixture logs (Intel,
//! Motorola, floats, labels, 64-bit, CAN FD, simple and extended multiplexing) into a reused buffer.
//! When the shared reference fixtures are present (`/work/shared/fixtures/can`), also decodes the
//! log of `vehicle.dbc` (217 messages, a realistic lookup).
//! Run with `cargo bench -p dbc --bench decode`; the time per iteration divided by the frame count
//! (or 1 / the throughput) is the time per frame.

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use dbc::{Database, Value};

struct Frame {
    id: u32,
    extended: bool,
    data: Vec<u8>,
}

fn fixtures(directory: &Path, names: &[&str]) -> (Database, Vec<Frame>) {
    let mut database = Database::default();
    let mut frames = Vec::new();
    for name in names {
        let (part, warnings) = Database::load(&directory.join(format!("{name}.dbc"))).expect("fixture DBC");
        assert!(warnings.is_empty(), "{warnings:?}");
        assert!(database.merge(part).is_empty());
        let log = std::fs::read_to_string(directory.join(format!("{name}.log"))).expect("fixture log");
        for line in buses::can::log::parse_log(&log) {
            let (_, line) = line.expect("fixture log line");
            let frame = line.frame().expect("a data frame");
            frames.push(Frame { id: frame.id(), extended: frame.is_extended(), data: frame.data().to_vec() });
        }
    }
    (database, frames)
}

fn decode_all<'d>(database: &'d Database, frames: &[Frame], out: &mut Vec<dbc::Decoded<'d>>) -> usize {
    let mut signals = 0;
    for frame in frames {
        let Some(message) = database.message(black_box(frame.id), frame.extended) else { continue };
        let _ = message.decode(black_box(&frame.data), out);
        signals += out.len();
    }
    signals
}

fn decode(c: &mut Criterion) {
    let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let (database, frames) = fixtures(&own, &["layouts", "multiplexing"]);
    let mut group = c.benchmark_group("decode");
    group.throughput(Throughput::Elements(frames.len() as u64));
    group.bench_function("fixture frames", |b| {
        let mut out = Vec::with_capacity(16);
        b.iter(|| decode_all(&database, &frames, &mut out));
    });
    group.finish();

    let reference = Path::new("/work/shared/fixtures/can");
    if reference.join("vehicle.dbc").exists() {
        let (vehicle, vehicle_frames) = fixtures(reference, &["vehicle"]);
        let mut group = c.benchmark_group("decode");
        group.throughput(Throughput::Elements(vehicle_frames.len() as u64));
        group.bench_function("vehicle.dbc frames", |b| {
            let mut out = Vec::with_capacity(16);
            b.iter(|| decode_all(&vehicle, &vehicle_frames, &mut out));
        });
        group.finish();
    }

    let message = database.message_by_name("IntelMix").expect("IntelMix");
    let values = [
        ("U3", Value::Integer(5)),
        ("S11", Value::Number(-12.5)),
        ("U17", Value::Number(12.34)),
        ("S9", Value::Integer(-100)),
        ("U20", Value::Integer(1000)),
    ];
    c.bench_function("encode IntelMix", |b| b.iter(|| message.encode(black_box(&values)).expect("encodes")));
}

criterion_group!(benches, decode);
criterion_main!(benches);
