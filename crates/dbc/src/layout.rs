//! Where a signal's bits sit in a frame, computed once at load time so that decoding is a few shifts.

use crate::ByteOrder;

/// The bytes a signal spans and how its value sits in them.
///
/// A signal of up to 64 bits spans at most 9 bytes; those bytes are loaded into a `u128` in the
/// signal's byte order, so that the value is `(word >> shift) & mask` for both byte orders.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The first byte the signal touches.
    first: usize,
    /// How many bytes it touches, 1 to 9.
    len: usize,
    /// The position of the value's least significant bit in the loaded word.
    shift: u32,
    /// `size` low bits set.
    mask: u64,
    big_endian: bool,
}

impl Layout {
    /// The layout of a signal with DBC start bit `start` (the least significant bit for Intel,
    /// the most significant bit in DBC's sawtooth numbering for Motorola) and `size` bits (1 to 64).
    pub(crate) fn new(start: u32, size: u32, byte_order: ByteOrder) -> Self {
        let mask = if size >= 64 { u64::MAX } else { (1u64 << size) - 1 };
        match byte_order {
            ByteOrder::LittleEndian => {
                let first = (start / 8) as usize;
                let last = ((start + size - 1) / 8) as usize;
                Self { first, len: last - first + 1, shift: start % 8, mask, big_endian: false }
            }
            ByteOrder::BigEndian => {
                // Number the bits from the most significant bit of byte 0 (0) onwards, so that
                // the signal occupies the consecutive positions `msb..=lsb`.
                let msb = (start / 8) * 8 + 7 - start % 8;
                let lsb = msb + size - 1;
                let first = (msb / 8) as usize;
                let last = (lsb / 8) as usize;
                let shift = (last as u32 + 1) * 8 - 1 - lsb;
                Self { first, len: last - first + 1, shift, mask, big_endian: true }
            }
        }
    }

    /// The number of bytes a frame needs for the signal to fit.
    pub(crate) fn end(&self) -> usize {
        self.first + self.len
    }

    /// The signal's raw bits, or `None` when `data` is too short to hold them.
    #[inline]
    pub(crate) fn extract(&self, data: &[u8]) -> Option<u64> {
        let bytes = data.get(self.first..self.first + self.len)?;
        let word = if self.big_endian {
            bytes.iter().fold(0u128, |word, &byte| word << 8 | u128::from(byte))
        } else {
            bytes.iter().rev().fold(0u128, |word, &byte| word << 8 | u128::from(byte))
        };
        Some((word >> self.shift) as u64 & self.mask)
    }

    /// Writes the low `size` bits of `raw` into `data`, which must be at least `end()` long.
    pub(crate) fn insert(&self, data: &mut [u8], raw: u64) {
        let Some(bytes) = data.get_mut(self.first..self.first + self.len) else { return };
        let mut word = if self.big_endian {
            bytes.iter().fold(0u128, |word, &byte| word << 8 | u128::from(byte))
        } else {
            bytes.iter().rev().fold(0u128, |word, &byte| word << 8 | u128::from(byte))
        };
        let mask = u128::from(self.mask) << self.shift;
        word = (word & !mask) | ((u128::from(raw & self.mask) << self.shift) & mask);
        let len = bytes.len();
        for (index, byte) in bytes.iter_mut().enumerate() {
            let position = if self.big_endian { len - 1 - index } else { index };
            *byte = (word >> (8 * position)) as u8;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

    use super::*;

    #[test]
    fn intel_spanning_bytes() {
        let layout = Layout::new(4, 12, ByteOrder::LittleEndian);
        assert_eq!(layout.extract(&[0xAB, 0xCD]), Some(0xCDA));
        let mut data = [0u8; 2];
        layout.insert(&mut data, 0xCDA);
        assert_eq!(data, [0xA0, 0xCD]);
    }

    #[test]
    fn motorola_sawtooth() {
        // Start bit 7 is the most significant bit of byte 0: a 16-bit value is bytes 0 and 1.
        let layout = Layout::new(7, 16, ByteOrder::BigEndian);
        assert_eq!(layout.extract(&[0x12, 0x34]), Some(0x1234));
        // Start bit 3, 8 bits: the low nibble of byte 0 and the high nibble of byte 1.
        let layout = Layout::new(3, 8, ByteOrder::BigEndian);
        assert_eq!(layout.extract(&[0x12, 0x34]), Some(0x23));
        let mut data = [0xFFu8; 2];
        layout.insert(&mut data, 0x00);
        assert_eq!(data, [0xF0, 0x0F]);
    }

    #[test]
    fn sixty_four_bits_unaligned() {
        let layout = Layout::new(4, 64, ByteOrder::LittleEndian);
        let mut data = [0u8; 9];
        layout.insert(&mut data, 0x0123_4567_89AB_CDEF);
        assert_eq!(layout.extract(&data), Some(0x0123_4567_89AB_CDEF));
        let layout = Layout::new(3, 64, ByteOrder::BigEndian);
        layout.insert(&mut data, 0xFEDC_BA98_7654_3210);
        assert_eq!(layout.extract(&data), Some(0xFEDC_BA98_7654_3210));
        assert_eq!(layout.extract(&data[..8]), None);
    }
}
