//! Damaged input never panics: every prefix and many single-byte corruptions of the fixture DBC files
//! load, and every message decodes frames of any length.

use dbc::{Database, Value};

use crate::fixtures::directory;

#[test]
fn damaged_dbc_files_load_without_panicking() {
    for name in ["layouts.dbc", "multiplexing.dbc", "messy.dbc"] {
        let text = std::fs::read_to_string(directory().join(name)).unwrap();
        let mut cut = 0;
        while cut < text.len() {
            if text.is_char_boundary(cut) {
                let _ = Database::parse(&text[..cut]);
            }
            cut += 7;
        }
        let bytes = text.as_bytes();
        for (index, replacement) in
            (0..bytes.len()).step_by(5).zip([b'"', b';', b'\n', b'-', b'9', b' ', b'M', b'@'].iter().cycle())
        {
            let mut damaged = bytes.to_vec();
            damaged[index] = *replacement;
            let _ = Database::parse(&String::from_utf8_lossy(&damaged));
        }
    }
}

#[test]
fn frames_of_any_length_decode_without_panicking() {
    for name in ["layouts.dbc", "multiplexing.dbc", "messy.dbc"] {
        let (database, _) = Database::load(&directory().join(name)).unwrap();
        let mut out = Vec::new();
        for message in database.messages() {
            for len in 0..=64 {
                let _ = message.decode(&vec![0xA5; len], &mut out);
                let _ = message.decode(&vec![0xFF; len], &mut out);
            }
            let _ = message.encode(&[]);
            for signal in &message.signals {
                for value in
                    [Value::Number(-1e300), Value::Number(1e300), Value::Integer(i128::MIN), Value::Integer(i128::MAX)]
                {
                    let _ = message.encode(&[(signal.name.as_str(), value)]);
                }
            }
        }
    }
}
