//! Lenient DBC parser, decoder and encoder (work in progress).
