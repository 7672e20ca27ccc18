//! Messages and signals, and the codec: decoding frames into signal values and encoding values into frames.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use thiserror::Error;

use crate::layout::Layout;

/// The most multiplexer signals one message can have (more are dropped with a warning at load time).
pub const MAX_MULTIPLEXERS: usize = 32;

/// How a signal's bytes are ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteOrder {
    /// Intel, `@1`: the start bit is the least significant bit.
    LittleEndian,
    /// Motorola, `@0`: the start bit is the most significant bit, in DBC's sawtooth numbering.
    BigEndian,
}

/// How a signal's raw bits are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueType {
    Unsigned,
    /// Two's complement.
    Signed,
    /// IEEE 754 single precision (`SIG_VALTYPE_ ... 1`), 32 bits.
    Float32,
    /// IEEE 754 double precision (`SIG_VALTYPE_ ... 2`), 64 bits.
    Float64,
}

/// A raw signal value: the bits as read, before factor and offset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Raw {
    Unsigned(u64),
    Signed(i64),
    Float(f64),
}

/// A physical signal value, `raw * factor + offset`.
///
/// `Int` when the signal is an integer type and its factor and offset are whole numbers (as cantools
/// gives ints); `Float` otherwise.
/// `Int` is an `i128` so that 64-bit unsigned signals keep every bit; if the scaled value does not fit,
/// it becomes a `Float`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Physical {
    Int(i128),
    Float(f64),
}

/// When a multiplexed signal is present.
#[derive(Debug, Clone, PartialEq)]
pub struct MuxCondition {
    /// The name of the multiplexer signal.
    pub multiplexer: String,
    /// The multiplexer's raw values for which the signal is present, as inclusive ranges
    /// (`m3` gives `[(3, 3)]`; `SG_MUL_VAL_` can give more).
    pub ranges: Vec<(u64, u64)>,
    /// The multiplexer's index in [`Message::signals`].
    pub(crate) index: usize,
    /// The multiplexer's slot in the decoder's table of multiplexer values.
    pub(crate) slot: usize,
}

impl MuxCondition {
    /// Whether the signal is present when the multiplexer's raw value is `value`.
    pub fn contains(&self, value: i128) -> bool {
        self.ranges.iter().any(|&(low, high)| i128::from(low) <= value && value <= i128::from(high))
    }

    #[inline]
    fn contains_raw(&self, value: u64) -> bool {
        self.ranges.iter().any(|&(low, high)| low <= value && value <= high)
    }
}

/// A signal of a message.
#[derive(Debug, Clone)]
pub struct Signal {
    pub name: String,
    /// The DBC start bit: the least significant bit for Intel, the most significant for Motorola.
    pub start_bit: u32,
    /// Length in bits, 1 to 64.
    pub size: u32,
    pub byte_order: ByteOrder,
    pub value_type: ValueType,
    pub factor: f64,
    pub offset: f64,
    /// The DBC minimum; `minimum` and `maximum` both 0 means no range is given.
    pub minimum: f64,
    pub maximum: f64,
    pub unit: String,
    pub receivers: Vec<String>,
    /// The raw initial value (`GenSigStartValue`), used by the encoder for signals left out.
    pub initial_raw: Option<Raw>,
    /// Value labels (`VAL_`), sorted by raw value.
    pub labels: Vec<(i128, String)>,
    /// Whether this signal selects which multiplexed signals are present (`M` or `m<N>M`).
    pub is_multiplexer: bool,
    /// For a multiplexed signal (`m<N>`, `SG_MUL_VAL_`), when it is present.
    pub multiplexed_by: Option<MuxCondition>,
    pub comment: Option<String>,
    /// The line of its `SG_` statement.
    pub line: usize,
    pub(crate) layout: Layout,
    /// Factor and offset as integers, when the signal decodes to [`Physical::Int`].
    pub(crate) integer_scaling: Option<(i128, i128)>,
    /// For a multiplexer, its slot in the decoder's table of multiplexer values.
    pub(crate) mux_slot: Option<usize>,
}

/// A message (`BO_`).
#[derive(Debug, Clone)]
pub struct Message {
    /// The identifier without the extended flag.
    pub id: u32,
    /// 29-bit identifier (bit 31 of the DBC identifier).
    pub extended: bool,
    pub name: String,
    /// Length in bytes, up to 64.
    pub size: usize,
    /// CAN FD (`VFrameFormat` is `StandardCAN_FD` or `ExtendedCAN_FD`, or the length is above 8).
    pub fd: bool,
    /// `GenMsgCycleTime`, when given and not 0.
    pub cycle_time_ms: Option<u32>,
    /// The transmitter of the `BO_` line and those of `BO_TX_BU_`, without `Vector__XXX`.
    pub senders: Vec<String>,
    pub comment: Option<String>,
    /// The signals in DBC order.
    pub signals: Vec<Signal>,
    /// The file it was loaded from, if any.
    pub file: Option<Arc<Path>>,
    /// The line of its `BO_` statement.
    pub line: usize,
    /// Indices into `signals`, each multiplexer before the signals it selects.
    pub(crate) decode_order: Vec<usize>,
}

/// One decoded signal value.
#[derive(Debug, Clone, Copy)]
pub struct Decoded<'m> {
    pub signal: &'m Signal,
    /// The signal's index in [`Message::signals`], for state kept per signal.
    pub index: usize,
    pub raw: Raw,
    pub physical: Physical,
    /// The value label of the raw value (`VAL_`), if it has one.
    pub label: Option<&'m str>,
}

/// A value to encode: a number in physical units, or a value label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value<'a> {
    Number(f64),
    /// An exact integer, for signals wider than the 53 bits an `f64` holds exactly.
    Integer(i128),
    Label(&'a str),
}

/// An encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The frame's data, [`Message::size`] bytes long.
    pub data: Vec<u8>,
    /// The signals that were not given and took their initial value, in decode order.
    pub defaulted: Vec<String>,
}

/// A frame that could not be decoded completely. It borrows its names from the message, so
/// that decoding a short frame does not allocate either.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError<'m> {
    #[error(
        "message \"{message}\": the frame has {got} bytes but the DBC declares {expected}; {missing} signal(s) did not fit, first \"{first_missing}\""
    )]
    Truncated { message: &'m str, expected: usize, got: usize, missing: usize, first_missing: &'m str },
}

/// Why values could not be encoded.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum EncodeError {
    #[error("message \"{message}\" has no signal \"{signal}\"; its signals are: {known}")]
    UnknownSignal { message: String, signal: String, known: String },
    #[error("signal \"{signal}\" is given twice")]
    Duplicate { signal: String },
    #[error("signal \"{signal}\" has no value label \"{label}\"; {known}")]
    UnknownLabel { signal: String, label: String, known: String },
    #[error("signal \"{signal}\": {value} is not a finite number")]
    NotFinite { signal: String, value: f64 },
    #[error("signal \"{signal}\": {value} is out of range: {allowed}")]
    OutOfRange { signal: String, value: String, allowed: String },
    #[error("signal \"{signal}\" is only present when {multiplexer} is {expected}, but {multiplexer} is {actual}")]
    Inactive { signal: String, multiplexer: String, expected: String, actual: String },
}

impl fmt::Display for Raw {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Raw::Unsigned(value) => write!(f, "{value}"),
            Raw::Signed(value) => write!(f, "{value}"),
            Raw::Float(value) => write!(f, "{value}"),
        }
    }
}

impl Raw {
    /// The value as an integer (`None` for a float).
    pub fn as_integer(self) -> Option<i128> {
        match self {
            Raw::Unsigned(value) => Some(i128::from(value)),
            Raw::Signed(value) => Some(i128::from(value)),
            Raw::Float(_) => None,
        }
    }

    pub fn as_f64(self) -> f64 {
        match self {
            Raw::Unsigned(value) => value as f64,
            Raw::Signed(value) => value as f64,
            Raw::Float(value) => value,
        }
    }
}

impl fmt::Display for Physical {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Physical::Int(value) => write!(f, "{value}"),
            Physical::Float(value) => write!(f, "{value}"),
        }
    }
}

impl Physical {
    pub fn as_f64(self) -> f64 {
        match self {
            Physical::Int(value) => value as f64,
            Physical::Float(value) => value,
        }
    }
}

impl From<f64> for Value<'_> {
    fn from(value: f64) -> Self {
        Value::Number(value)
    }
}

impl From<i64> for Value<'_> {
    fn from(value: i64) -> Self {
        Value::Integer(i128::from(value))
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(label: &'a str) -> Self {
        Value::Label(label)
    }
}

impl Decoded<'_> {
    pub fn name(&self) -> &str {
        &self.signal.name
    }

    pub fn unit(&self) -> &str {
        &self.signal.unit
    }
}

impl Signal {
    /// The value label of a raw value.
    pub fn label(&self, raw: i128) -> Option<&str> {
        self.labels.binary_search_by_key(&raw, |(value, _)| *value).ok().map(|index| self.labels[index].1.as_str())
    }

    /// Whether the DBC gives a range (`[0|0]` means none).
    pub fn has_range(&self) -> bool {
        !(self.minimum == 0.0 && self.maximum == 0.0)
    }

    /// The raw values the bit field holds (for floats, the finite range of the type).
    pub fn raw_range(&self) -> (f64, f64) {
        match self.value_type {
            ValueType::Unsigned => (0.0, 2f64.powi(self.size as i32) - 1.0),
            ValueType::Signed => (-(2f64.powi(self.size as i32 - 1)), 2f64.powi(self.size as i32 - 1) - 1.0),
            ValueType::Float32 => (f64::from(f32::MIN), f64::from(f32::MAX)),
            ValueType::Float64 => (f64::MIN, f64::MAX),
        }
    }

    /// The number of bytes a frame needs for this signal to fit.
    pub fn end_byte(&self) -> usize {
        self.layout.end()
    }

    /// Reads the raw value from a frame, `None` if the frame is too short.
    pub fn raw(&self, data: &[u8]) -> Option<Raw> {
        let bits = self.layout.extract(data)?;
        Some(match self.value_type {
            ValueType::Unsigned => Raw::Unsigned(bits),
            ValueType::Signed => {
                let unused = 64 - self.size;
                Raw::Signed(((bits << unused) as i64) >> unused)
            }
            ValueType::Float32 => Raw::Float(f64::from(f32::from_bits(bits as u32))),
            ValueType::Float64 => Raw::Float(f64::from_bits(bits)),
        })
    }

    /// `raw * factor + offset`, as cantools computes it.
    pub fn physical(&self, raw: Raw) -> Physical {
        if let (Some((factor, offset)), Some(raw)) = (self.integer_scaling, raw.as_integer())
            && let Some(value) = raw.checked_mul(factor).and_then(|value| value.checked_add(offset))
        {
            return Physical::Int(value);
        }
        let raw = raw.as_f64();
        if self.factor == 1.0 && self.offset == 0.0 {
            // cantools returns the raw value itself here; `raw * 1.0 + 0.0` would turn -0.0 into 0.0.
            return Physical::Float(raw);
        }
        Physical::Float(raw * self.factor + self.offset)
    }

    /// The raw value for a physical value or label, checked against the DBC range and the bit field.
    pub fn to_raw(&self, value: Value<'_>) -> Result<Raw, EncodeError> {
        let number = match value {
            Value::Label(label) => {
                let Some(&(raw, _)) = self.labels.iter().find(|(_, name)| name == label) else {
                    let known = if self.labels.is_empty() {
                        "it has no value labels".to_owned()
                    } else {
                        let names: Vec<String> = self.labels.iter().map(|(_, name)| format!("\"{name}\"")).collect();
                        format!("its labels are: {}", names.join(", "))
                    };
                    return Err(EncodeError::UnknownLabel {
                        signal: self.name.clone(),
                        label: label.to_owned(),
                        known,
                    });
                };
                return self.check_raw_integer(raw, label);
            }
            Value::Number(number) => number,
            Value::Integer(integer) => integer as f64,
        };
        if !number.is_finite() {
            return Err(EncodeError::NotFinite { signal: self.name.clone(), value: number });
        }
        let shown = match value {
            Value::Integer(integer) => integer.to_string(),
            _ => number.to_string(),
        };
        if self.has_range() && !(self.minimum <= number && number <= self.maximum) {
            return Err(self.out_of_range(shown));
        }
        match self.value_type {
            ValueType::Float32 | ValueType::Float64 => {
                let raw = (number - self.offset) / self.factor;
                let (low, high) = self.raw_range();
                if !(low <= raw && raw <= high) {
                    return Err(self.out_of_range(shown));
                }
                Ok(Raw::Float(raw))
            }
            ValueType::Unsigned | ValueType::Signed => {
                // Exact integer arithmetic where possible, so that 64-bit signals keep every bit.
                if let (Value::Integer(integer), Some((factor, offset))) = (value, self.integer_scaling)
                    && let Some(shifted) = integer.checked_sub(offset)
                    && shifted.checked_rem(factor) == Some(0)
                    && let Some(raw) = shifted.checked_div(factor)
                {
                    return self.check_raw_integer(raw, &shown);
                }
                let raw = ((number - self.offset) / self.factor).round_ties_even();
                let (low, high) = self.raw_range();
                if !(low <= raw && raw <= high) {
                    return Err(self.out_of_range(shown));
                }
                self.check_raw_integer(raw as i128, &shown)
            }
        }
    }

    /// The raw value the encoder uses when the signal is not given: `GenSigStartValue` if the DBC
    /// gives one, else raw 0, or, when raw 0 is outside the DBC range, the value of that range nearest to 0.
    pub fn default_raw(&self) -> Raw {
        if let Some(raw) = self.initial_raw {
            return raw;
        }
        let zero = match self.value_type {
            ValueType::Unsigned => Raw::Unsigned(0),
            ValueType::Signed => Raw::Signed(0),
            ValueType::Float32 | ValueType::Float64 => Raw::Float(0.0),
        };
        if self.has_range() && !(self.minimum <= self.offset && self.offset <= self.maximum) {
            let nearest = 0f64.clamp(self.minimum.min(self.maximum), self.maximum.max(self.minimum));
            if let Ok(raw) = self.to_raw(Value::Number(nearest)) {
                return raw;
            }
        }
        zero
    }

    fn check_raw_integer(&self, raw: i128, shown: &str) -> Result<Raw, EncodeError> {
        match self.value_type {
            ValueType::Unsigned => {
                let max = if self.size >= 64 { i128::from(u64::MAX) } else { (1i128 << self.size) - 1 };
                if (0..=max).contains(&raw) { Ok(Raw::Unsigned(raw as u64)) } else { Err(self.out_of_range(shown)) }
            }
            ValueType::Signed => {
                let half = 1i128 << (self.size - 1);
                if (-half..half).contains(&raw) { Ok(Raw::Signed(raw as i64)) } else { Err(self.out_of_range(shown)) }
            }
            ValueType::Float32 | ValueType::Float64 => Ok(Raw::Float(raw as f64)),
        }
    }

    fn out_of_range(&self, value: impl Into<String>) -> EncodeError {
        let (raw_low, raw_high) = self.raw_range();
        let kind = match self.value_type {
            ValueType::Unsigned => format!("{}-bit unsigned", self.size),
            ValueType::Signed => format!("{}-bit signed", self.size),
            ValueType::Float32 => "float32".to_owned(),
            ValueType::Float64 => "float64".to_owned(),
        };
        let (mut low, mut high) = (raw_low * self.factor + self.offset, raw_high * self.factor + self.offset);
        if low > high {
            std::mem::swap(&mut low, &mut high);
        }
        let field = format!("the {kind} field holds {low} to {high}");
        let allowed = if self.has_range() {
            format!("the DBC allows {} to {}, and {field}", self.minimum, self.maximum)
        } else {
            field
        };
        EncodeError::OutOfRange { signal: self.name.clone(), value: value.into(), allowed }
    }

    fn bits(&self, raw: Raw) -> u64 {
        match (self.value_type, raw) {
            (ValueType::Float32, raw) => u64::from((raw.as_f64() as f32).to_bits()),
            (ValueType::Float64, raw) => raw.as_f64().to_bits(),
            (_, Raw::Unsigned(value)) => value,
            (_, Raw::Signed(value)) => value as u64,
            (_, Raw::Float(value)) => value.round_ties_even() as i128 as u64,
        }
    }
}

impl Message {
    /// Decodes a frame into `out` (cleared first), without allocating once `out` has grown to the
    /// message's signal count.
    ///
    /// Only the signals present for the frame's multiplexer values are given, each multiplexer before
    /// the signals it selects, otherwise in DBC order.
    /// A frame longer than [`Message::size`] is fine (as in cantools); the extra bytes only serve signals
    /// that the DBC places beyond the message's length (warned about at load time).
    /// A shorter frame gives the signals that fit entirely (as cantools' `allow_truncated=True`); if a
    /// present signal within the declared length did not fit, the result is [`DecodeError::Truncated`]
    /// and `out` still holds the signals that fit (cantools' default raises an error instead).
    /// A multiplexer value that selects no signal is not an error: the frame gives the multiplexer and the
    /// signals that are always present (cantools raises an error there).
    ///
    /// ```
    /// let (db, _) = dbc::Database::parse(r#"
    /// BO_ 291 Engine: 2 ECU
    ///  SG_ Speed : 0|8@1+ (0.5,0) [0|100] "km/h" Vector__XXX
    ///  SG_ Gear : 8|4@1+ (1,0) [0|0] "" Vector__XXX
    /// VAL_ 291 Gear 0 "Neutral" 1 "First";
    /// "#);
    /// let message = db.message(0x123, false).unwrap();
    /// let mut out = Vec::new();
    /// message.decode(&[0x64, 0x01], &mut out).unwrap();
    /// assert_eq!(out[0].physical, dbc::Physical::Float(50.0));
    /// assert_eq!(out[0].unit(), "km/h");
    /// assert_eq!(out[1].physical, dbc::Physical::Int(1));
    /// assert_eq!(out[1].label, Some("First"));
    /// ```
    pub fn decode<'m>(&'m self, data: &[u8], out: &mut Vec<Decoded<'m>>) -> Result<(), DecodeError<'m>> {
        out.clear();
        // The raw values of the multiplexers decoded so far; bit `slot` of `present` says which are.
        let mut multiplexers = [0u64; MAX_MULTIPLEXERS];
        let mut present = 0u32;
        let mut missing = 0usize;
        let mut first_missing = None;
        for &index in &self.decode_order {
            let signal = &self.signals[index];
            if let Some(condition) = &signal.multiplexed_by
                && (present & (1 << condition.slot) == 0 || !condition.contains_raw(multiplexers[condition.slot]))
            {
                continue;
            }
            let Some(raw) = signal.raw(data) else {
                // A signal beyond the declared length (warned about at load time) is not the frame's fault.
                if signal.layout.end() <= self.size {
                    missing += 1;
                    first_missing.get_or_insert(index);
                }
                continue;
            };
            let integer = raw.as_integer();
            if let Some(slot) = signal.mux_slot {
                // A negative multiplexer value selects nothing: the ranges are unsigned.
                match integer.and_then(|value| u64::try_from(value).ok()) {
                    Some(value) => {
                        multiplexers[slot] = value;
                        present |= 1 << slot;
                    }
                    None => present &= !(1 << slot),
                }
            }
            let label = match integer {
                Some(raw) if !signal.labels.is_empty() => signal.label(raw),
                _ => None,
            };
            out.push(Decoded { signal, index, raw, physical: signal.physical(raw), label });
        }
        match first_missing {
            None => Ok(()),
            Some(index) => Err(DecodeError::Truncated {
                message: &self.name,
                expected: self.size,
                got: data.len(),
                missing,
                first_missing: &self.signals[index].name,
            }),
        }
    }

    /// Encodes signal values given by name, as physical numbers or value labels.
    ///
    /// Signals left out take [`Signal::default_raw`] and are listed in [`Encoded::defaulted`].
    /// For a multiplexed message, the multiplexer values (given or defaulted) select which signals may be
    /// given; a signal that would not be present is an error.
    /// Physical values are converted with rounding to the nearest raw value (ties to even, as cantools).
    ///
    /// ```
    /// use dbc::Value;
    /// let (db, _) = dbc::Database::parse(r#"
    /// BO_ 291 Engine: 2 ECU
    ///  SG_ Speed : 0|8@1+ (0.5,0) [0|100] "km/h" Vector__XXX
    ///  SG_ Gear : 8|4@1+ (1,0) [0|0] "" Vector__XXX
    /// VAL_ 291 Gear 0 "Neutral" 1 "First";
    /// "#);
    /// let message = db.message_by_name("Engine").unwrap();
    /// let encoded = message.encode(&[("Gear", Value::Label("First"))]).unwrap();
    /// assert_eq!(encoded.data, [0x00, 0x01]);
    /// assert_eq!(encoded.defaulted, ["Speed"]);
    /// let error = message.encode(&[("Speed", Value::Number(120.0))]).unwrap_err();
    /// assert_eq!(
    ///     error.to_string(),
    ///     "signal \"Speed\": 120 is out of range: the DBC allows 0 to 100, and the 8-bit unsigned field holds 0 to 127.5"
    /// );
    /// ```
    pub fn encode(&self, values: &[(&str, Value<'_>)]) -> Result<Encoded, EncodeError> {
        let mut given: Vec<Option<Raw>> = vec![None; self.signals.len()];
        for &(name, value) in values {
            let Some(index) = self.signals.iter().position(|signal| signal.name == name) else {
                let known: Vec<&str> = self.signals.iter().map(|signal| signal.name.as_str()).collect();
                return Err(EncodeError::UnknownSignal {
                    message: self.name.clone(),
                    signal: name.to_owned(),
                    known: known.join(", "),
                });
            };
            if given[index].is_some() {
                return Err(EncodeError::Duplicate { signal: name.to_owned() });
            }
            given[index] = Some(self.signals[index].to_raw(value)?);
        }
        let mut data = vec![0u8; self.size];
        let mut defaulted = Vec::new();
        let mut multiplexers = [None::<i128>; MAX_MULTIPLEXERS];
        for &index in &self.decode_order {
            let signal = &self.signals[index];
            if let Some(condition) = &signal.multiplexed_by {
                let value = multiplexers[condition.slot];
                let present = value.is_some_and(|value| condition.contains(value));
                if !present {
                    if given[index].is_some() {
                        return Err(EncodeError::Inactive {
                            signal: signal.name.clone(),
                            multiplexer: condition.multiplexer.clone(),
                            expected: describe_ranges(&condition.ranges),
                            actual: value.map_or_else(|| "not present".to_owned(), |value| value.to_string()),
                        });
                    }
                    continue;
                }
            }
            let raw = match given[index] {
                Some(raw) => raw,
                None => {
                    defaulted.push(signal.name.clone());
                    signal.default_raw()
                }
            };
            if let Some(slot) = signal.mux_slot {
                multiplexers[slot] = raw.as_integer();
            }
            signal.layout.insert(&mut data, signal.bits(raw));
        }
        Ok(Encoded { data, defaulted })
    }

    /// The signal called `name`.
    pub fn signal(&self, name: &str) -> Option<&Signal> {
        self.signals.iter().find(|signal| signal.name == name)
    }
}

/// `3`, `3 or 5`, `1 to 4 or 8`.
fn describe_ranges(ranges: &[(u64, u64)]) -> String {
    let parts: Vec<String> = ranges
        .iter()
        .map(|&(low, high)| if low == high { low.to_string() } else { format!("{low} to {high}") })
        .collect();
    parts.join(" or ")
}
