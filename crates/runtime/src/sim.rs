//! The simulation controls every mock bus shares: setting a simulated chip's physical inputs
//! and reading back its state. The gateways add their bus's fault injections.

use device::{Args, CommandSpec, DeviceError, Outcome, Param, ParamKind, Sample};

/// `set_input` and `inspect`, for [`crate::SimControl::commands`].
pub fn input_commands() -> Vec<CommandSpec> {
    let name = Param {
        name: "name",
        kind: ParamKind::Text { max_chars: 32 },
        required: true,
        description: "the simulated chip's input or state, e.g. temperature, ch3, fault",
    };
    vec![
        CommandSpec {
            action: "set_input",
            params: vec![
                name.clone(),
                Param {
                    name: "value",
                    kind: ParamKind::Float { min: -1e9, max: 1e9 },
                    required: true,
                    description: "in the input's unit",
                },
            ],
            description: "sets a simulated physical input",
        },
        CommandSpec { action: "inspect", params: vec![name], description: "reads back a piece of chip state" },
    ]
}

/// Runs `set_input` or `inspect` through the mock bus's accessors; `None` for other actions.
pub fn input_command(
    action: &str,
    args: &Args,
    set_input: impl FnOnce(&str, f64) -> bool,
    inspect: impl FnOnce(&str) -> Option<f64>,
) -> Option<Result<Outcome, DeviceError>> {
    let result = match action {
        "set_input" => args.text("name").and_then(|name| {
            let value = args.float("value")?;
            if set_input(name, value) {
                Ok(Outcome { values: Vec::new(), note: Some(format!("input {name} set to {value}")) })
            } else {
                Err(DeviceError::Config(format!("the simulated chip has no input {name:?}")))
            }
        }),
        "inspect" => args.text("name").and_then(|name| match inspect(name) {
            Some(value) => Ok(Outcome { values: vec![Sample::new("value", value)], note: None }),
            None => Err(DeviceError::Config(format!("the simulated chip has no state {name:?}"))),
        }),
        _ => return None,
    };
    Some(result)
}

/// A fault action without parameters.
pub fn action(action: &'static str, description: &'static str) -> CommandSpec {
    CommandSpec { action, params: Vec::new(), description }
}
