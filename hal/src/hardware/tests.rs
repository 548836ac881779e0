//! `Hardware` on the simulator: names, errors, steps, sensors, serial ports.

use std::time::Duration;

use crate::config::{Backend, HalConfig, InputConfig, OutputConfig};
use crate::{DoorState, HalError, Hardware, SensorReading, Step, StepsReport};

fn depot() -> Hardware {
    Hardware::open_sim_manual(&HalConfig::example_sim_depot()).unwrap()
}

fn drone() -> Hardware {
    Hardware::open_sim_manual(&HalConfig::example_sim_drone()).unwrap()
}

#[test]
fn names_are_listed_sorted() {
    let hw = depot();
    assert_eq!(hw.output_names(), ["charger", "door", "estop", "lights"]);
    assert_eq!(
        hw.input_names(),
        ["charging", "door_closed", "door_open", "drone_present"]
    );
    assert_eq!(hw.sensor_names(), ["climate"]);
    assert!(hw.serial_names().is_empty());
    assert_eq!(hw.backend(), Backend::Sim);
}

#[test]
fn unknown_names_list_what_is_configured() {
    let mut hw = depot();
    assert_eq!(
        hw.set_output("siren", true).unwrap_err().to_string(),
        "no output named \"siren\" is configured (outputs: charger, door, estop, lights)"
    );
    assert_eq!(
        hw.input("door").unwrap_err().to_string(),
        "no input named \"door\" is configured (inputs: charging, door_closed, door_open, drone_present)"
    );
    assert_eq!(
        hw.read_sensor("battery").unwrap_err().to_string(),
        "no sensor named \"battery\" is configured (sensors: climate)"
    );
    assert_eq!(
        hw.serial_write("fc", b"x").unwrap_err().to_string(),
        "no serial port named \"fc\" is configured (serial ports: none)"
    );
}

#[test]
fn outputs_remember_their_level_and_start_at_initial() {
    let mut config = HalConfig::example_sim_drone();
    config.outputs.get_mut("lights").unwrap().initial = true;
    let mut hw = Hardware::open_sim_manual(&config).unwrap();
    assert!(hw.output("lights").unwrap());
    assert!(!hw.output("estop").unwrap());
    hw.set_output("estop", true).unwrap();
    assert!(hw.output("estop").unwrap());
    assert_eq!(hw.drone_status().unwrap().estop_engaged, Some(true));
}

#[test]
fn active_low_lines_mean_the_same_to_the_simulated_machine() {
    // Relay boards and switches to ground: "on" is the low level on both lines.
    let mut config = HalConfig::example_sim_depot();
    config.outputs.insert(
        "door".into(),
        OutputConfig {
            active_low: true,
            ..OutputConfig::default()
        },
    );
    config.inputs.insert(
        "door_closed".into(),
        InputConfig {
            active_low: true,
            ..InputConfig::default()
        },
    );
    let mut hw = Hardware::open_sim_manual(&config).unwrap();
    assert!(hw.input("door_closed").unwrap());
    assert_eq!(hw.depot_status().unwrap().door, Some(DoorState::Closed));
    hw.set_output("door", true).unwrap();
    hw.advance(Duration::from_secs(10));
    assert!(!hw.input("door_closed").unwrap());
    assert_eq!(hw.depot_status().unwrap().door, Some(DoorState::Open));
}

#[test]
fn the_wrong_status_for_the_simulated_machine_is_a_clear_error() {
    assert_eq!(
        depot().drone_status().unwrap_err().to_string(),
        "the simulator plays a depot, not a drone (hal.sim.kind); use depot_status"
    );
    assert!(matches!(
        drone().depot_status(),
        Err(HalError::Unsupported(_))
    ));
}

#[test]
fn simulated_sensors_read_the_simulated_machine() {
    let mut hw = drone();
    hw.set_job_active(true);
    hw.advance(Duration::from_secs(30));
    let status = hw.drone_status().unwrap();
    let SensorReading::Battery(battery) = hw.read_sensor("battery").unwrap() else {
        panic!("the battery sensor read something else");
    };
    assert_eq!(Some(battery.voltage_v), status.battery_voltage_v);
    assert_eq!(Some(battery.current_a), status.battery_current_a);
    assert_eq!(battery.percent, status.battery_percent);

    let mut hw = depot();
    hw.advance(Duration::from_secs(30));
    let status = hw.depot_status().unwrap();
    let SensorReading::Climate(climate) = hw.read_sensor("climate").unwrap() else {
        panic!("the climate sensor read something else");
    };
    assert_eq!(Some(climate.temperature_c), status.temperature_c);
    assert_eq!(Some(climate.humidity_percent), status.humidity_percent);
}

#[test]
fn simulated_serial_ports_loop_back() {
    let mut hw = drone();
    hw.serial_write("fc", b"\xfe\x09heartbeat").unwrap();
    let mut buf = [0u8; 64];
    let n = hw.serial_read("fc", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"\xfe\x09heartbeat");
    assert_eq!(hw.serial_read("fc", &mut buf).unwrap(), 0);
}

fn lines(report: &StepsReport) -> Vec<&str> {
    report.lines.iter().map(String::as_str).collect()
}

#[test]
fn steps_open_and_close_the_depot_door() {
    let mut hw = depot();
    let steps = [
        Step::Set {
            output: "door".into(),
            on: true,
        },
        Step::Expect {
            line: "door_open".into(),
            on: true,
            within_ms: 10_000,
        },
        Step::Expect {
            line: "door".into(),
            on: true,
            within_ms: 0,
        },
        Step::Set {
            output: "door".into(),
            on: false,
        },
        Step::Wait { ms: 500 },
        Step::Expect {
            line: "door_closed".into(),
            on: true,
            within_ms: 10_000,
        },
    ];
    let report = hw.run_steps(&steps);
    assert_eq!(
        lines(&report),
        [
            "1/6 set door on: ok",
            "2/6 expect door_open on within 10000 ms: ok after 8000 ms",
            "3/6 expect door on within 0 ms: ok",
            "4/6 set door off: ok",
            "5/6 wait 500 ms: ok",
            "6/6 expect door_closed on within 10000 ms: ok after 7500 ms",
        ],
        "{report}"
    );
    assert!(report.ok);
    // Waits advanced simulated time, and nothing else did.
    assert_eq!(hw.sim_time(), Some(Duration::from_millis(16_000)));
}

#[test]
fn a_failing_expect_is_reported_and_later_steps_still_run() {
    let mut hw = depot();
    let steps = [
        Step::Set {
            output: "estop".into(),
            on: true,
        },
        Step::Set {
            output: "door".into(),
            on: true,
        },
        Step::Expect {
            line: "door_open".into(),
            on: true,
            within_ms: 3000,
        },
        Step::Set {
            output: "siren".into(),
            on: true,
        },
        Step::Set {
            output: "door_closed".into(),
            on: true,
        },
        Step::Set {
            output: "door".into(),
            on: false,
        },
    ];
    let report = hw.run_steps(&steps);
    assert!(!report.ok);
    assert_eq!(
        lines(&report),
        [
            "1/6 set estop on: ok",
            "2/6 set door on: ok",
            "3/6 expect door_open on within 3000 ms: FAILED: still off after 3000 ms",
            "4/6 set siren on: FAILED: no output named \"siren\" is configured (outputs: charger, door, estop, lights)",
            "5/6 set door_closed on: FAILED: \"door_closed\" is an input; only outputs can be set",
            "6/6 set door off: ok",
        ],
        "{report}"
    );
    assert!(!hw.output("door").unwrap());
    assert_eq!(hw.sim_time(), Some(Duration::from_millis(3000)));
}

#[test]
fn a_board_config_can_be_rehearsed_in_the_simulator() {
    let mut config = HalConfig::example_sim_depot();
    config.backend = Backend::Rpi;
    let mut hw = Hardware::open_sim_manual(&config).unwrap();
    assert_eq!(hw.backend(), Backend::Sim);
    hw.set_output("door", true).unwrap();
    // ... and is still checked as the board would check it.
    config
        .outputs
        .insert("relay".into(), OutputConfig::default());
    assert_eq!(
        Hardware::open_sim_manual(&config)
            .err()
            .unwrap()
            .to_string(),
        "hal.outputs.relay.pin: a pin is required by the rpi backend"
    );
}

#[test]
fn open_runs_the_simulator_on_the_wall_clock() {
    let mut hw = Hardware::open(&HalConfig::example_sim_drone()).unwrap();
    let first = hw.sim_time().unwrap();
    hw.advance(Duration::from_secs(5));
    // Wall-clock time only adds to what advance() gave.
    assert!(hw.sim_time().unwrap() >= first + Duration::from_secs(5));
    assert!(hw.drone_status().is_ok());
}

#[cfg(not(feature = "linux"))]
#[test]
fn a_backend_left_out_of_the_build_says_which_feature_to_enable() {
    let config = HalConfig {
        backend: Backend::Linux,
        ..HalConfig::default()
    };
    assert_eq!(
        Hardware::open(&config).err().unwrap().to_string(),
        "backend \"linux\" is not built into this binary (enable sortie-hal's `linux` feature)"
    );
}

#[test]
fn status_json_uses_the_documented_names() {
    let mut hw = drone();
    let json = serde_json::to_value(hw.drone_status().unwrap()).unwrap();
    // Sorted: serde_json keeps struct order when another crate turns on `preserve_order`.
    let mut keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "altitude_m",
            "armed",
            "battery_current_a",
            "battery_percent",
            "battery_voltage_v",
            "distance_to_home_m",
            "estop_engaged",
            "ground_speed_mps",
            "heading_deg",
            "latitude_deg",
            "longitude_deg",
            "source",
            "state",
            "vertical_speed_mps",
        ]
    );
    assert_eq!(json["state"], "landed");
    assert_eq!(json["source"], "sim");
    let json = serde_json::to_value(depot().depot_status().unwrap()).unwrap();
    assert_eq!(json["door"], "closed");
    assert_eq!(json["door_closed"], true);
}
