//! The board file's options for an MCP3008 or MCP3208, validated.

use device::{DeviceError, Options};

use crate::protocol::{InputMode, Model};

/// Option names the drivers accept in the board file.
pub(crate) const VREF: &str = "vref";
pub(crate) const INPUTS: &str = "inputs";

/// The reference voltage when the board file gives none: the common 3.3 V board supply.
pub(crate) const DEFAULT_VREF: f64 = 3.3;
/// VREF may not exceed VDD, whose operating maximum is 5.5 V (DS21295 and DS21298 §1.0,
/// "Electrical Characteristics").
const MAX_VREF: f64 = 5.5;

/// The words `inputs` accepts.
const SINGLE: &str = "single";
const DIFFERENTIAL: &str = "differential";

/// What the options configure.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    /// The voltage on the VREF pin: the full scale of every conversion (Equation 4-2).
    pub(crate) vref: f64,
    /// How poll() converts the inputs.
    pub(crate) inputs: InputMode,
}

impl Settings {
    /// Validates the options: unknown names, wrong types and values outside what the chip
    /// allows are configuration errors naming the option, the value and what is allowed.
    pub(crate) fn from_options(model: Model, options: &Options) -> Result<Self, DeviceError> {
        options.check_known(model.driver(), crate::OPTIONS)?;
        let vref = options.float_or(VREF, DEFAULT_VREF)?;
        // Written so that NaN fails too.
        if !(vref > 0.0 && vref <= MAX_VREF) {
            return Err(DeviceError::Config(format!(
                "option {VREF:?} = {vref} is out of range: the reference voltage must be more than 0 V and at most \
                 {MAX_VREF} V (VREF may not exceed the {}'s supply voltage)",
                model.name()
            )));
        }
        let inputs = match options.text_or(INPUTS, SINGLE)? {
            SINGLE => InputMode::Single,
            DIFFERENTIAL => InputMode::Differential,
            other => {
                return Err(DeviceError::Config(format!(
                    "option {INPUTS:?} = {other:?} is not allowed: use {SINGLE:?} (CH0 to CH7 against AGND) or \
                     {DIFFERENTIAL:?} (the pseudo-differential pairs CH0-CH1 to CH7-CH6)"
                )));
            }
        };
        Ok(Self { vref, inputs })
    }
}
