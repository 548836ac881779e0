//! The `[hal]` table and the `safe_state` steps. Both are kept as raw TOML in a
//! [`ConfigLayer`](super::ConfigLayer) (they are file-only) and turned into the hardware
//! layer's own types here, so a mistake is reported with the key it is under.

use sortie_hal::{HalConfig, HalError, Step};

use super::ConfigError;

/// Parses and checks the `[hal]` table (names, pins, addresses, drivers). Devices are not
/// opened here: that happens when the agent starts, which it refuses with the device's error.
pub fn resolve_hal(table: toml::Table) -> Result<HalConfig, ConfigError> {
    let config: HalConfig =
        toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Entry {
                key: "hal".into(),
                reason: e.message().trim().to_owned(),
            })?;
    config.validate().map_err(|e| match e {
        HalError::Config { key, problem } => ConfigError::Entry {
            key,
            reason: problem,
        },
        other => ConfigError::Entry {
            key: "hal".into(),
            reason: other.chain(),
        },
    })?;
    Ok(config)
}

/// Parses the `safe_state` steps and checks that each names a line of `hal`: a typo must
/// stop the agent now, not surface when a job is being cancelled.
pub fn resolve_steps(
    tables: Vec<toml::Table>,
    hal: Option<&HalConfig>,
) -> Result<Vec<Step>, ConfigError> {
    let Some(hal) = hal else {
        if tables.is_empty() {
            return Ok(Vec::new());
        }
        return Err(ConfigError::Entry {
            key: "safe_state".into(),
            reason: "hardware steps need the hardware layer, but there is no [hal] table \
                     (use safe_state_command for a shell command instead)"
                .into(),
        });
    };
    let known = |names: &mut dyn Iterator<Item = &String>| {
        let names: Vec<&str> = names.map(String::as_str).collect();
        if names.is_empty() {
            "none".to_owned()
        } else {
            names.join(", ")
        }
    };
    tables
        .into_iter()
        .enumerate()
        .map(|(i, table)| {
            let key = format!("safe_state[{i}]");
            let step: Step =
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| ConfigError::Entry {
                        key: key.clone(),
                        reason: e.message().trim().to_owned(),
                    })?;
            let missing = match &step {
                Step::Set { output, .. } if !hal.outputs.contains_key(output) => Some(format!(
                    "no output named {output:?} in [hal] (outputs: {})",
                    known(&mut hal.outputs.keys())
                )),
                Step::Expect { line, .. }
                    if !hal.inputs.contains_key(line) && !hal.outputs.contains_key(line) =>
                {
                    Some(format!(
                        "no input or output named {line:?} in [hal] (inputs: {}; outputs: {})",
                        known(&mut hal.inputs.keys()),
                        known(&mut hal.outputs.keys())
                    ))
                }
                _ => None,
            };
            match missing {
                Some(reason) => Err(ConfigError::Entry { key, reason }),
                None => Ok(step),
            }
        })
        .collect()
}
