//! The air around the simulated machine: a daily swing plus a slow, seeded random drift.

use std::f64::consts::TAU;

use super::rng::Rng;
use crate::drivers::ClimateReading;

/// Half the day-night temperature swing, in °C.
const DAILY_AMPLITUDE_C: f64 = 3.0;
const DAY_S: f64 = 86_400.0;
/// How fast the drift forgets (Ornstein-Uhlenbeck time constant), in seconds.
const DRIFT_TIME_S: f64 = 600.0;
/// Drift strength; the drift's spread settles near sigma * sqrt(DRIFT_TIME_S / 2):
/// about 0.9 °C and 2.6 % RH.
const TEMPERATURE_SIGMA: f64 = 0.05;
const HUMIDITY_SIGMA: f64 = 0.15;
/// Warmer air holds more water: relative humidity falls as the temperature rises.
const HUMIDITY_PER_DEGREE: f64 = 2.0;

#[derive(Debug, Clone)]
pub(crate) struct Weather {
    mean_temperature_c: f64,
    mean_humidity_percent: f64,
    elapsed_s: f64,
    drift_c: f64,
    drift_percent: f64,
}

impl Weather {
    pub(crate) fn new(mean_temperature_c: f64, mean_humidity_percent: f64) -> Self {
        Self {
            mean_temperature_c,
            mean_humidity_percent,
            elapsed_s: 0.0,
            drift_c: 0.0,
            drift_percent: 0.0,
        }
    }

    pub(crate) fn step(&mut self, dt_s: f64, rng: &mut Rng) {
        self.elapsed_s += dt_s;
        let pull = dt_s / DRIFT_TIME_S;
        let kick = dt_s.sqrt();
        self.drift_c += -self.drift_c * pull + TEMPERATURE_SIGMA * kick * rng.gauss();
        self.drift_percent += -self.drift_percent * pull + HUMIDITY_SIGMA * kick * rng.gauss();
    }

    pub(crate) fn reading(&self) -> ClimateReading {
        let swing = DAILY_AMPLITUDE_C * (TAU * self.elapsed_s / DAY_S).sin();
        let temperature_c = self.mean_temperature_c + swing + self.drift_c;
        let humidity = self.mean_humidity_percent
            - HUMIDITY_PER_DEGREE * (temperature_c - self.mean_temperature_c)
            + self.drift_percent;
        ClimateReading {
            temperature_c,
            humidity_percent: humidity.clamp(0.0, 100.0),
        }
    }
}
