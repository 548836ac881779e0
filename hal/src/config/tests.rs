use super::*;
use crate::HalError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AgentFile {
    hal: HalConfig,
}

fn parse(text: &str) -> HalConfig {
    toml::from_str::<AgentFile>(text).unwrap().hal
}

fn problem(config: &HalConfig) -> String {
    config.validate().unwrap_err().to_string()
}

pub(crate) const SIM_DRONE: &str = r#"
[hal]
backend = "sim"
[hal.sim]
kind = "drone"
seed = 7
home = { lat = 47.397742, lon = 8.545594 }
route = [{ lat = 47.3990, lon = 8.5456 }, { lat = 47.3990, lon = 8.5480 }]
cruise_altitude_m = 30.0
[hal.outputs.estop]
[hal.outputs.charger]
[hal.inputs.landed]
[hal.sensors.battery]
driver = "ina219"
bus = "/dev/i2c-1"
cells = 4
[hal.serial.fc]
path = "/dev/ttyAMA0"
baud = 57600
"#;

pub(crate) const SIM_DEPOT: &str = r#"
[hal]
backend = "sim"
[hal.sim]
kind = "depot"
seed = 3
door_travel_ms = 6000
[hal.outputs.door]
[hal.outputs.charger]
[hal.outputs.estop]
[hal.inputs.door_closed]
active_low = true
[hal.inputs.drone_present]
[hal.sensors.climate]
driver = "shtc3"
bus = "/dev/i2c-1"
"#;

pub(crate) const RPI_DEPOT: &str = r#"
[hal]
backend = "rpi"
[hal.outputs.door]
pin = 17
[hal.outputs.estop]
pin = 23
active_low = true
initial = true
[hal.inputs.door_closed]
pin = 27
active_low = true
pull = "up"
[hal.inputs.door_open]
pin = 22
active_low = true
pull = "up"
[hal.sensors.climate]
driver = "shtc3"
bus = "/dev/i2c-1"
[hal.sensors.battery]
driver = "ina219"
bus = "/dev/i2c-1"
address = 0x41
shunt_milliohm = 10.0
cells = 4
[hal.serial.modem]
path = "/dev/ttyUSB0"
baud = 115200
"#;

#[test]
fn documented_examples_parse_and_validate() {
    for text in [SIM_DRONE, SIM_DEPOT, RPI_DEPOT] {
        parse(text).validate().unwrap();
    }
    let rpi = parse(RPI_DEPOT);
    assert_eq!(rpi.backend, Backend::Rpi);
    assert_eq!(rpi.inputs["door_closed"].pull, Pull::Up);
    assert_eq!(rpi.sensors["battery"].address, Some(0x41));
    assert_eq!(parse(SIM_DEPOT).sim.kind, SimKind::Depot);
}

#[test]
fn config_round_trips_through_toml() {
    for config in [
        parse(RPI_DEPOT),
        parse(SIM_DRONE),
        HalConfig::example_sim_drone(),
        HalConfig::example_sim_depot(),
        HalConfig::default(),
    ] {
        let text = toml::to_string(&config).unwrap();
        let back: HalConfig = toml::from_str(&text).unwrap();
        assert_eq!(back, config, "{text}");
    }
}

#[test]
fn an_empty_hal_table_is_a_simulated_drone() {
    let config = parse("[hal]");
    assert_eq!(config, HalConfig::default());
    assert_eq!(config.backend, Backend::Sim);
    assert_eq!(config.sim.kind, SimKind::Drone);
}

#[test]
fn unknown_keys_are_refused_when_parsing() {
    for (text, field) in [
        ("[hal.outputs.door]\npinn = 3", "pinn"),
        ("[hal.sim]\nspeed = 3", "speed"),
        ("[hal]\nbackend = \"sim\"\nchip = \"x\"", "chip"),
    ] {
        let err = toml::from_str::<AgentFile>(text).unwrap_err();
        assert!(
            err.message().contains(&format!("unknown field `{field}`")),
            "{err}"
        );
    }
}

fn linux() -> HalConfig {
    HalConfig {
        backend: Backend::Linux,
        ..HalConfig::default()
    }
}

#[test]
fn a_pin_used_twice_names_both_keys() {
    let mut config = linux();
    config
        .outputs
        .insert("door".into(), OutputConfig::on_pin(17));
    config
        .inputs
        .insert("door_closed".into(), InputConfig::on_pin(17));
    assert_eq!(
        problem(&config),
        "hal.inputs.door_closed.pin: pin 17 is already used by hal.outputs.door"
    );
    // The same offset on another chip is another line.
    config.inputs.get_mut("door_closed").unwrap().chip = Some("/dev/gpiochip1".into());
    config.validate().unwrap();
}

#[test]
fn a_name_that_is_both_output_and_input_is_refused() {
    let mut config = HalConfig::default();
    config
        .outputs
        .insert("door".into(), OutputConfig::default());
    config.inputs.insert("door".into(), InputConfig::default());
    assert_eq!(
        problem(&config),
        "hal.inputs.door: \"door\" is already an output (hal.outputs.door); outputs and inputs share one set of names"
    );
}

#[test]
fn names_with_odd_characters_are_refused() {
    let mut config = HalConfig::default();
    config
        .outputs
        .insert("front door".into(), OutputConfig::default());
    assert_eq!(
        problem(&config),
        "hal.outputs.\"front door\": names may use only letters, digits, `_` and `-`"
    );
}

#[test]
fn pins_are_checked_for_the_backend() {
    let mut config = linux();
    config
        .outputs
        .insert("relay".into(), OutputConfig::default());
    assert_eq!(
        problem(&config),
        "hal.outputs.relay.pin: a pin is required by the linux backend"
    );
    // The simulator needs no pins.
    config.validate_for(Backend::Sim).unwrap();

    let mut config = HalConfig {
        backend: Backend::Rpi,
        ..HalConfig::default()
    };
    config
        .outputs
        .insert("relay".into(), OutputConfig::on_pin(60));
    assert_eq!(
        problem(&config),
        "hal.outputs.relay.pin: BCM GPIO 60 does not exist (0-53)"
    );

    config.outputs.insert(
        "relay".into(),
        OutputConfig {
            chip: Some("/dev/gpiochip0".into()),
            ..OutputConfig::on_pin(5)
        },
    );
    assert_eq!(
        problem(&config),
        "hal.outputs.relay.chip: `chip` is for the linux backend; the rpi backend numbers pins by BCM GPIO"
    );

    let mut config = linux();
    config.inputs.insert(
        "limit".into(),
        InputConfig {
            pull: Pull::Up,
            ..InputConfig::on_pin(4)
        },
    );
    assert_eq!(
        problem(&config),
        "hal.inputs.limit.pull: the linux backend cannot set pull resistors (GPIO character device v1); set the bias in the device tree"
    );
}

#[test]
fn an_unknown_driver_lists_the_known_ones() {
    let mut config = HalConfig::default();
    config.sensors.insert(
        "climate".into(),
        SensorConfig {
            driver: "bme999".into(),
            ..SensorConfig::shtc3("/dev/i2c-1")
        },
    );
    assert_eq!(
        problem(&config),
        "hal.sensors.climate.driver: unknown driver \"bme999\"; known drivers: ina219, shtc3"
    );
}

#[test]
fn bad_addresses_are_refused() {
    let cases = [
        (
            "ina219",
            0x70,
            "address 0x70 is not an ina219 address (0x40-0x4f)",
        ),
        (
            "ina219",
            0x140,
            "address 0x140 is not an ina219 address (0x40-0x4f)",
        ),
        ("shtc3", 0x44, "address 0x44 is not an shtc3 address (0x70)"),
    ];
    for (driver, address, message) in cases {
        let mut config = HalConfig::default();
        config.sensors.insert(
            "sensor".into(),
            SensorConfig {
                driver: driver.into(),
                bus: "/dev/i2c-1".into(),
                address: Some(address),
                shunt_milliohm: None,
                cells: None,
            },
        );
        assert_eq!(
            problem(&config),
            format!("hal.sensors.sensor.address: {message}")
        );
    }
}

#[test]
fn two_sensors_at_one_address_are_refused() {
    let mut config = HalConfig::default();
    config
        .sensors
        .insert("battery".into(), SensorConfig::ina219("/dev/i2c-1"));
    config
        .sensors
        .insert("charger".into(), SensorConfig::ina219("/dev/i2c-1"));
    assert_eq!(
        problem(&config),
        "hal.sensors.charger.address: address 0x40 on /dev/i2c-1 is already used by hal.sensors.battery"
    );
    config.sensors.get_mut("charger").unwrap().address = Some(0x41);
    config.validate().unwrap();
}

#[test]
fn sensor_options_are_checked() {
    let mut config = HalConfig::default();
    config.sensors.insert(
        "climate".into(),
        SensorConfig {
            cells: Some(3),
            ..SensorConfig::shtc3("/dev/i2c-1")
        },
    );
    assert_eq!(
        problem(&config),
        "hal.sensors.climate.cells: `cells` applies to the ina219 driver only"
    );

    let mut config = HalConfig::default();
    config.sensors.insert(
        "battery".into(),
        SensorConfig {
            cells: Some(12),
            ..SensorConfig::ina219("/dev/i2c-1")
        },
    );
    assert_eq!(
        problem(&config),
        "hal.sensors.battery.cells: an INA219 measures up to 26 V: 1-6 LiPo cells, not 12"
    );

    config.sensors.get_mut("battery").unwrap().cells = None;
    config.sensors.get_mut("battery").unwrap().shunt_milliohm = Some(0.0);
    assert_eq!(
        problem(&config),
        "hal.sensors.battery.shunt_milliohm: the shunt must be a positive resistance, not 0"
    );

    let mut config = HalConfig {
        backend: Backend::Rpi,
        ..HalConfig::default()
    };
    config
        .sensors
        .insert("battery".into(), SensorConfig::ina219("/dev/i2c"));
    assert_eq!(
        problem(&config),
        "hal.sensors.battery.bus: the rpi backend needs a bus like /dev/i2c-1, not \"/dev/i2c\""
    );
}

#[test]
fn status_sensors_need_the_right_driver() {
    let mut config = HalConfig::default();
    config
        .sensors
        .insert("battery".into(), SensorConfig::shtc3("/dev/i2c-1"));
    assert_eq!(
        problem(&config),
        "hal.sensors.battery.driver: the `battery` sensor feeds drone_status and needs the ina219 driver, not shtc3"
    );
}

#[test]
fn serial_ports_are_checked() {
    let mut config = HalConfig::default();
    let port = SerialConfig {
        path: "/dev/ttyUSB0".into(),
        baud: 0,
        timeout_ms: 100,
    };
    config.serial.insert("fc".into(), port.clone());
    assert_eq!(
        problem(&config),
        "hal.serial.fc.baud: the baud rate must be above 0"
    );
    config
        .serial
        .insert("fc".into(), SerialConfig { baud: 9600, ..port });
    config
        .serial
        .insert("gps".into(), config.serial["fc"].clone());
    assert_eq!(
        problem(&config),
        "hal.serial.gps.path: /dev/ttyUSB0 is already used by hal.serial.fc"
    );
}

#[test]
fn impossible_sim_parameters_are_refused() {
    let mut sim = SimConfig {
        cruise_speed_mps: 0.0,
        ..SimConfig::default()
    };
    assert_eq!(
        sim.validate().unwrap_err().to_string(),
        "hal.sim.cruise_speed_mps: must be above 0, not 0"
    );
    sim.cruise_speed_mps = 5.0;
    sim.route.push(GeoPoint {
        lat: 91.0,
        lon: 0.0,
    });
    assert_eq!(
        sim.validate().unwrap_err().to_string(),
        "hal.sim.route[3]: (91, 0) is not a latitude/longitude in degrees"
    );
    assert!(matches!(sim.validate(), Err(HalError::Config { .. })));
}
