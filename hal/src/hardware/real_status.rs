//! Status reports on real backends, from the lines and sensors with well-known names.

use super::Hardware;
use crate::drivers::{BatteryReading, ClimateReading, SensorReading};
use crate::status::{DepotStatus, DoorState, DroneStatus, StatusSource};
use crate::HalError;

/// The sensor that feeds a drone's battery fields.
pub(crate) const BATTERY_SENSOR: &str = "battery";
/// The sensor that feeds a depot's temperature and humidity.
pub(crate) const CLIMATE_SENSOR: &str = "climate";

impl Hardware {
    pub(super) fn measured_drone_status(&mut self) -> Result<DroneStatus, HalError> {
        let battery = self.battery_reading()?;
        Ok(DroneStatus {
            source: StatusSource::Hardware,
            battery_percent: battery.and_then(|b| b.percent),
            battery_voltage_v: battery.map(|b| b.voltage_v),
            battery_current_a: battery.map(|b| b.current_a),
            latitude_deg: None,
            longitude_deg: None,
            altitude_m: None,
            ground_speed_mps: None,
            vertical_speed_mps: None,
            heading_deg: None,
            distance_to_home_m: None,
            armed: None,
            state: None,
            estop_engaged: self.optional_output("estop"),
        })
    }

    pub(super) fn measured_depot_status(&mut self) -> Result<DepotStatus, HalError> {
        let door_closed = self.optional_input("door_closed")?;
        let door_open = self.optional_input("door_open")?;
        let climate = self.climate_reading()?;
        Ok(DepotStatus {
            source: StatusSource::Hardware,
            door: door_state(self.optional_output("door"), door_closed, door_open),
            door_closed,
            charging: self.optional_input("charging")?,
            drone_present: self.optional_input("drone_present")?,
            drone_battery_percent: None,
            temperature_c: climate.map(|c| c.temperature_c),
            humidity_percent: climate.map(|c| c.humidity_percent),
            estop_engaged: self.optional_output("estop"),
        })
    }

    fn optional_output(&self, name: &str) -> Option<bool> {
        self.outputs.get(name).map(|output| output.is_on())
    }

    fn optional_input(&mut self, name: &str) -> Result<Option<bool>, HalError> {
        if self.inputs.contains_key(name) {
            self.input(name).map(Some)
        } else {
            Ok(None)
        }
    }

    fn battery_reading(&mut self) -> Result<Option<BatteryReading>, HalError> {
        if !self.sensors.contains_key(BATTERY_SENSOR) {
            return Ok(None);
        }
        match self.read_sensor(BATTERY_SENSOR)? {
            SensorReading::Battery(reading) => Ok(Some(reading)),
            SensorReading::Climate(_) => Ok(None),
        }
    }

    fn climate_reading(&mut self) -> Result<Option<ClimateReading>, HalError> {
        if !self.sensors.contains_key(CLIMATE_SENSOR) {
            return Ok(None);
        }
        match self.read_sensor(CLIMATE_SENSOR)? {
            SensorReading::Climate(reading) => Ok(Some(reading)),
            SensorReading::Battery(_) => Ok(None),
        }
    }
}

/// The door as far as the limit switches and the command tell; `None` without any switch.
pub(crate) fn door_state(
    commanded_open: Option<bool>,
    closed: Option<bool>,
    open: Option<bool>,
) -> Option<DoorState> {
    if closed.is_none() && open.is_none() {
        return None;
    }
    let at_closed = closed == Some(true);
    let at_open = open == Some(true);
    Some(match (at_closed, at_open, commanded_open) {
        (true, _, Some(true)) => DoorState::Opening,
        (true, _, _) => DoorState::Closed,
        (false, true, Some(false)) => DoorState::Closing,
        (false, true, _) => DoorState::Open,
        // Between the switches: moving towards the command if there is a switch to reach,
        // otherwise most likely already there.
        (false, false, Some(true)) if open.is_some() => DoorState::Opening,
        (false, false, Some(true)) => DoorState::Open,
        (false, false, Some(false)) if closed.is_some() => DoorState::Closing,
        (false, false, Some(false)) => DoorState::Closed,
        (false, false, None) => DoorState::Stopped,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn door_state_follows_switches_and_command() {
        use DoorState::*;
        let cases = [
            (Some(false), Some(true), Some(false), Some(Closed)),
            (Some(true), Some(true), Some(false), Some(Opening)),
            (Some(true), Some(false), Some(false), Some(Opening)),
            (Some(true), Some(false), Some(true), Some(Open)),
            (Some(false), Some(false), Some(true), Some(Closing)),
            (Some(false), Some(false), Some(false), Some(Closing)),
            (Some(true), Some(false), None, Some(Open)),
            (Some(false), None, Some(false), Some(Closed)),
            (None, Some(false), None, Some(Stopped)),
            (Some(true), None, None, None),
        ];
        for (command, closed, open, expected) in cases {
            assert_eq!(
                door_state(command, closed, open),
                expected,
                "{command:?} {closed:?} {open:?}"
            );
        }
    }
}
