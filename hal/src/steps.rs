//! Step sequences: a node's safe state, or a check run from the command line.
//!
//! ```toml
//! safe_state = [
//!   { set = "estop", to = "on" },
//!   { set = "door", to = "close" },
//!   { wait_ms = 500 },
//!   { expect = "door_closed", to = "on", within_ms = 10000 },
//! ]
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::level::{level_word, parse_level};
use crate::HalError;

/// One step of a sequence run by [`crate::Hardware::run_steps`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawStep", into = "RawStep")]
pub enum Step {
    /// `{ set = "estop", to = "on" }`: drive an output.
    Set {
        /// The output's name.
        output: String,
        /// The level: `to` accepts every word of [`crate::parse_level`], or a boolean.
        on: bool,
    },
    /// `{ wait_ms = 500 }`: let time pass.
    Wait {
        /// How long, in milliseconds.
        ms: u64,
    },
    /// `{ expect = "door_closed", to = "on", within_ms = 5000 }`: wait until an input (or an
    /// output) is at a level, failing after `within_ms` (default 0: check once).
    Expect {
        /// The input's (or output's) name.
        line: String,
        /// The level expected.
        on: bool,
        /// How long to keep looking, in milliseconds.
        within_ms: u64,
    },
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Step::Set { output, on } => write!(f, "set {output} {}", level_word(*on)),
            Step::Wait { ms } => write!(f, "wait {ms} ms"),
            Step::Expect {
                line,
                on,
                within_ms,
            } => {
                write!(f, "expect {line} {} within {within_ms} ms", level_word(*on))
            }
        }
    }
}

/// The TOML form of a step: one table with exactly one of `set`, `wait_ms`, `expect`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStep {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    wait_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    expect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    to: Option<LevelValue>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    within_ms: Option<u64>,
}

/// `to = "open"`, `to = true` or `to = 1`.
#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum LevelValue {
    Bool(bool),
    Int(i64),
    Word(String),
}

impl LevelValue {
    fn level(&self) -> Result<bool, String> {
        match self {
            LevelValue::Bool(on) => Ok(*on),
            LevelValue::Int(1) => Ok(true),
            LevelValue::Int(0) => Ok(false),
            LevelValue::Int(n) => Err(HalError::BadLevel {
                word: n.to_string(),
            }
            .to_string()),
            LevelValue::Word(word) => parse_level(word).map_err(|e| e.to_string()),
        }
    }
}

impl TryFrom<RawStep> for Step {
    type Error = String;

    fn try_from(raw: RawStep) -> Result<Self, String> {
        let to = |name: &str| match &raw.to {
            Some(value) => value.level().map_err(|e| format!("step `{name}`: {e}")),
            None => Err(format!(
                "step `{name}` needs `to` (on/off, open/close, ...)"
            )),
        };
        let step = match (&raw.set, raw.wait_ms, &raw.expect) {
            (Some(output), None, None) => Step::Set {
                on: to(&format!("set = {output:?}"))?,
                output: output.clone(),
            },
            (None, Some(ms), None) => Step::Wait { ms },
            (None, None, Some(line)) => Step::Expect {
                on: to(&format!("expect = {line:?}"))?,
                line: line.clone(),
                within_ms: raw.within_ms.unwrap_or(0),
            },
            _ => return Err("a step has exactly one of `set`, `wait_ms`, `expect`".into()),
        };
        if raw.within_ms.is_some() && !matches!(step, Step::Expect { .. }) {
            return Err("`within_ms` belongs to an `expect` step".into());
        }
        if raw.to.is_some() && matches!(step, Step::Wait { .. }) {
            return Err("a `wait_ms` step takes no `to`".into());
        }
        Ok(step)
    }
}

impl From<Step> for RawStep {
    fn from(step: Step) -> Self {
        let to = |on| Some(LevelValue::Word(level_word(on).to_owned()));
        let none = RawStep {
            set: None,
            wait_ms: None,
            expect: None,
            to: None,
            within_ms: None,
        };
        match step {
            Step::Set { output, on } => RawStep {
                set: Some(output),
                to: to(on),
                ..none
            },
            Step::Wait { ms } => RawStep {
                wait_ms: Some(ms),
                ..none
            },
            Step::Expect {
                line,
                on,
                within_ms,
            } => RawStep {
                expect: Some(line),
                to: to(on),
                within_ms: Some(within_ms),
                ..none
            },
        }
    }
}

/// What [`crate::Hardware::run_steps`] did: one line per step, numbered, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepsReport {
    /// Every step succeeded.
    pub ok: bool,
    /// `"2/4 set door off: ok"`, `"4/4 expect door_closed on within 5000 ms: FAILED: still off after 5000 ms"`.
    pub lines: Vec<String>,
}

impl fmt::Display for StepsReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// What a sequence runs against: [`crate::Hardware`], with a clock that sleeps on real boards
/// and advances simulated time in the manual simulator.
pub(crate) trait StepTarget {
    fn set_line(&mut self, name: &str, on: bool) -> Result<(), HalError>;
    fn read_line(&mut self, name: &str) -> Result<bool, HalError>;
    /// Monotonic time, on the same clock as `pause`.
    fn now(&mut self) -> Duration;
    fn pause(&mut self, duration: Duration);
    /// How often an `expect` looks again.
    fn poll_interval(&self) -> Duration;
}

/// Runs every step, even after one fails.
///
/// Design: a safe-state sequence is a best effort: when the estop line fails, closing the door is
/// still worth doing, so a failure is reported and the next step runs anyway.
pub(crate) fn run(target: &mut impl StepTarget, steps: &[Step]) -> StepsReport {
    let mut report = StepsReport {
        ok: true,
        lines: Vec::with_capacity(steps.len()),
    };
    for (i, step) in steps.iter().enumerate() {
        let outcome = run_one(target, step);
        report.ok &= outcome.is_ok();
        let outcome = outcome.unwrap_or_else(|failure| format!("FAILED: {failure}"));
        report
            .lines
            .push(format!("{}/{} {step}: {outcome}", i + 1, steps.len()));
    }
    report
}

fn run_one(target: &mut impl StepTarget, step: &Step) -> Result<String, String> {
    match step {
        Step::Set { output, on } => target
            .set_line(output, *on)
            .map(|()| "ok".to_owned())
            .map_err(|e| e.chain()),
        Step::Wait { ms } => {
            target.pause(Duration::from_millis(*ms));
            Ok("ok".to_owned())
        }
        Step::Expect {
            line,
            on,
            within_ms,
        } => {
            let within = Duration::from_millis(*within_ms);
            let start = target.now();
            loop {
                let level = target.read_line(line).map_err(|e| e.chain())?;
                let waited = target.now().saturating_sub(start);
                if level == *on {
                    return Ok(if waited.is_zero() {
                        "ok".to_owned()
                    } else {
                        format!("ok after {} ms", waited.as_millis())
                    });
                }
                if waited >= within {
                    return Err(format!(
                        "still {} after {} ms",
                        level_word(level),
                        waited.as_millis()
                    ));
                }
                target.pause(target.poll_interval().min(within - waited));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Sequence {
        steps: Vec<Step>,
    }

    fn parse(toml_text: &str) -> Result<Vec<Step>, String> {
        toml::from_str::<Sequence>(toml_text)
            .map(|s| s.steps)
            .map_err(|e| e.message().to_owned())
    }

    #[test]
    fn toml_steps_parse_with_level_words() {
        let steps = parse(
            r#"steps = [
                { set = "estop", to = "on" },
                { set = "door", to = "close" },
                { wait_ms = 500 },
                { expect = "door_closed", to = true, within_ms = 5000 },
                { expect = "landed", to = 1 },
            ]"#,
        )
        .unwrap();
        assert_eq!(
            steps,
            [
                Step::Set {
                    output: "estop".into(),
                    on: true
                },
                Step::Set {
                    output: "door".into(),
                    on: false
                },
                Step::Wait { ms: 500 },
                Step::Expect {
                    line: "door_closed".into(),
                    on: true,
                    within_ms: 5000
                },
                Step::Expect {
                    line: "landed".into(),
                    on: true,
                    within_ms: 0
                },
            ]
        );
    }

    #[test]
    fn steps_round_trip_through_toml() {
        let steps = vec![
            Step::Set {
                output: "door".into(),
                on: true,
            },
            Step::Wait { ms: 20 },
            Step::Expect {
                line: "door_open".into(),
                on: true,
                within_ms: 9000,
            },
        ];
        #[derive(serde::Serialize)]
        struct Out<'a> {
            steps: &'a [Step],
        }
        let text = toml::to_string(&Out { steps: &steps }).unwrap();
        assert_eq!(parse(&text).unwrap(), steps);
    }

    #[test]
    fn malformed_steps_say_what_is_wrong() {
        let cases = [
            (r#"steps = [{ set = "door" }]"#, "step `set = \"door\"` needs `to` (on/off, open/close, ...)"),
            (r#"steps = [{ set = "door", to = "ajar" }]"#, "step `set = \"door\"`: \"ajar\" is not a level; use on/off, high/low, open/close(d), true/false or 1/0"),
            (r#"steps = [{ set = "door", wait_ms = 3, to = "on" }]"#, "a step has exactly one of `set`, `wait_ms`, `expect`"),
            (r#"steps = [{ wait_ms = 3, within_ms = 9 }]"#, "`within_ms` belongs to an `expect` step"),
            (r#"steps = [{ wait_ms = 3, to = "on" }]"#, "a `wait_ms` step takes no `to`"),
        ];
        for (text, message) in cases {
            assert_eq!(parse(text).unwrap_err(), message, "{text}");
        }
        assert!(parse(r#"steps = [{ sett = "door", to = "on" }]"#)
            .unwrap_err()
            .contains("unknown field `sett`"));
    }
}
