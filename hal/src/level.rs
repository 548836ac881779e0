//! Words for a digital level, as people type them on a command line or in a TOML step.

use crate::HalError;

/// Reads a level word: `on`/`off`, `high`/`low`, `open`/`close`/`closed`, `true`/`false`, `1`/`0`
/// (any case, surrounding blanks ignored). `true` means the line is *active*: an `active_low`
/// output that is "on" drives its pin low.
///
/// `open` is `true` because the depot's `door` output is "on" while the door should be open;
/// `closed` is `false` for the same reason. For an input such as `door_closed`, write `on`.
///
/// ```
/// assert!(sortie_hal::parse_level("Open").unwrap());
/// assert!(!sortie_hal::parse_level(" low ").unwrap());
/// assert!(sortie_hal::parse_level("ajar").is_err());
/// ```
pub fn parse_level(word: &str) -> Result<bool, HalError> {
    match word.trim().to_ascii_lowercase().as_str() {
        "on" | "high" | "open" | "true" | "1" => Ok(true),
        "off" | "low" | "close" | "closed" | "false" | "0" => Ok(false),
        _ => Err(HalError::BadLevel {
            word: word.to_owned(),
        }),
    }
}

/// The word this crate writes for a level in reports and serialized steps.
pub(crate) fn level_word(on: bool) -> &'static str {
    if on {
        "on"
    } else {
        "off"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_word_parses() {
        for word in ["on", "HIGH", "open", "true", "1", " On "] {
            assert!(parse_level(word).unwrap(), "{word}");
        }
        for word in ["off", "low", "close", "Closed", "false", "0"] {
            assert!(!parse_level(word).unwrap(), "{word}");
        }
    }

    #[test]
    fn an_unknown_word_is_named_in_the_error() {
        let err = parse_level("ajar").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"ajar\" is not a level; use on/off, high/low, open/close(d), true/false or 1/0"
        );
    }
}
