//! A simulated LiPo pack: coulomb counting, the resting-voltage curve, and sag under load.

use super::rng::Rng;
use crate::drivers::{lipo_cell_voltage, BatteryReading};

/// Internal resistance per cell in ohm: a 20 A load sags a 4S pack by about 1.2 V.
const CELL_RESISTANCE_OHM: f64 = 0.015;
/// Measurement noise on the pack voltage, ± volts.
const VOLTAGE_NOISE_V: f64 = 0.01;

#[derive(Debug, Clone)]
pub(crate) struct Battery {
    capacity_ah: f64,
    cells: u8,
    charge_ah: f64,
    current_a: f64,
    noise_v: f64,
}

impl Battery {
    pub(crate) fn new(capacity_mah: f64, cells: u8, percent: f64) -> Self {
        let capacity_ah = capacity_mah / 1000.0;
        Self {
            capacity_ah,
            cells,
            charge_ah: capacity_ah * percent / 100.0,
            current_a: 0.0,
            noise_v: 0.0,
        }
    }

    pub(crate) fn percent(&self) -> f64 {
        100.0 * self.charge_ah / self.capacity_ah
    }

    pub(crate) fn is_full(&self) -> bool {
        self.charge_ah >= self.capacity_ah
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.charge_ah <= 0.0
    }

    /// A 1C charge: the charger's current for this pack, in amperes.
    pub(crate) fn charge_current_a(&self) -> f64 {
        self.capacity_ah
    }

    /// Draws `current_a` (negative charges) for `dt_s` seconds.
    pub(crate) fn step(&mut self, current_a: f64, dt_s: f64, rng: &mut Rng) {
        self.charge_ah = (self.charge_ah - current_a * dt_s / 3600.0).clamp(0.0, self.capacity_ah);
        self.current_a = current_a;
        self.noise_v = rng.symmetric(VOLTAGE_NOISE_V);
    }

    pub(crate) fn voltage_v(&self) -> f64 {
        let cells = f64::from(self.cells);
        cells * (lipo_cell_voltage(self.percent()) - self.current_a * CELL_RESISTANCE_OHM)
            + self.noise_v
    }

    pub(crate) fn reading(&self) -> BatteryReading {
        BatteryReading {
            voltage_v: self.voltage_v(),
            current_a: self.current_a,
            percent: Some(self.percent()),
        }
    }
}
