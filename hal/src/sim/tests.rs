//! The simulated machines' behaviour, seen through [`Hardware`] as the agent sees it.

use std::time::Duration;

use crate::config::{GeoPoint, HalConfig, SimConfig, SimKind};
use crate::sim::geo::distance_m;
use crate::{DepotStatus, DoorState, DroneStatus, FlightState, Hardware};

const SECOND: Duration = Duration::from_secs(1);

fn open(config: &HalConfig) -> Hardware {
    Hardware::open_sim_manual(config).unwrap()
}

fn drone_with(sim: SimConfig) -> Hardware {
    open(&HalConfig {
        sim,
        ..HalConfig::example_sim_drone()
    })
}

/// Advances one second at a time, collecting the drone's status after each.
fn fly(hw: &mut Hardware, seconds: u32) -> Vec<DroneStatus> {
    (0..seconds)
        .map(|_| {
            hw.advance(SECOND);
            hw.drone_status().unwrap()
        })
        .collect()
}

fn position(status: &DroneStatus) -> GeoPoint {
    GeoPoint {
        lat: status.latitude_deg.unwrap(),
        lon: status.longitude_deg.unwrap(),
    }
}

#[test]
fn battery_holds_while_idle_and_drains_during_a_job() {
    let mut hw = open(&HalConfig::example_sim_drone());
    let start = hw.drone_status().unwrap();
    hw.advance(Duration::from_secs(600));
    let idle = hw.drone_status().unwrap();
    assert_eq!(idle.battery_percent, start.battery_percent);
    assert_eq!(idle.battery_current_a, Some(0.0));
    assert_eq!(idle.state, Some(FlightState::Landed));
    assert_eq!(idle.armed, Some(false));

    hw.set_job_active(true);
    hw.advance(Duration::from_secs(60));
    let busy = hw.drone_status().unwrap();
    assert_eq!(busy.armed, Some(true));
    assert_eq!(busy.battery_current_a, Some(20.0));
    // 20 A for 60 s out of 5 Ah is 6.7 %.
    let used = start.battery_percent.unwrap() - busy.battery_percent.unwrap();
    assert!(
        (used - 20.0 * 60.0 / 3600.0 / 5.0 * 100.0).abs() < 1e-9,
        "{used}"
    );
    assert!(busy.battery_voltage_v.unwrap() < start.battery_voltage_v.unwrap() - 1.0);
}

#[test]
fn the_drone_flies_the_route_in_order_then_lands_at_home() {
    let sim = SimConfig::default();
    let mut hw = drone_with(sim.clone());
    hw.set_job_active(true);
    let track = fly(&mut hw, 600);

    let states: Vec<FlightState> = track.iter().filter_map(|s| s.state).collect();
    let mut phases = states.clone();
    phases.dedup();
    assert_eq!(
        phases,
        [
            FlightState::TakingOff,
            FlightState::Flying,
            FlightState::Landing,
            FlightState::Landed
        ]
    );
    // Each waypoint is passed (within one second of flight), and in the route's order.
    let passed: Vec<usize> = sim
        .route
        .iter()
        .map(|waypoint| {
            track
                .iter()
                .position(|s| distance_m(position(s), *waypoint) <= sim.cruise_speed_mps)
                .unwrap_or_else(|| panic!("never came near {waypoint:?}"))
        })
        .collect();
    assert!(passed.windows(2).all(|w| w[0] < w[1]), "{passed:?}");
    let cruising: Vec<&DroneStatus> = track
        .iter()
        .filter(|s| s.state == Some(FlightState::Flying))
        .collect();
    assert!(cruising
        .iter()
        .all(|s| s.altitude_m == Some(sim.cruise_altitude_m)));
    // First leg due north, second due east.
    let heading = |i: usize| cruising[i].heading_deg.unwrap();
    assert!(heading(5).min(360.0 - heading(5)) < 0.5, "{}", heading(5));
    let east = track[passed[0] + 5].heading_deg.unwrap();
    assert!((east - 90.0).abs() < 0.5, "{east}");
    assert!(cruising
        .iter()
        .any(|s| s.ground_speed_mps == Some(sim.cruise_speed_mps)));

    let last = track.last().unwrap();
    assert_eq!(last.state, Some(FlightState::Landed));
    assert_eq!(last.armed, Some(false));
    assert_eq!(last.altitude_m, Some(0.0));
    assert!(last.distance_to_home_m.unwrap() < 0.01);
    assert!(hw.input("landed").unwrap());

    // One job, one flight: the drone stays down until the job ends, and flies for the next.
    assert!(fly(&mut hw, 60)
        .iter()
        .all(|s| s.state == Some(FlightState::Landed)));
    hw.set_job_active(false);
    hw.advance(SECOND);
    hw.set_job_active(true);
    hw.advance(SECOND);
    assert_eq!(
        hw.drone_status().unwrap().state,
        Some(FlightState::TakingOff)
    );
    assert!(!hw.input("landed").unwrap());
}

#[test]
fn ending_the_job_brings_the_drone_home() {
    let mut hw = open(&HalConfig::example_sim_drone());
    hw.set_job_active(true);
    let outbound = fly(&mut hw, 40);
    assert_eq!(outbound.last().unwrap().state, Some(FlightState::Flying));
    hw.set_job_active(false);
    let back = fly(&mut hw, 120);
    let last = back.last().unwrap();
    assert_eq!(last.state, Some(FlightState::Landed));
    assert!(last.distance_to_home_m.unwrap() < 0.01);
    // It turned back rather than finishing the 1.2 km route.
    let farthest = back
        .iter()
        .map(|s| s.distance_to_home_m.unwrap())
        .fold(0.0, f64::max);
    assert!(farthest < 300.0, "{farthest}");
}

#[test]
fn a_low_battery_cuts_the_route_short() {
    let mut hw = drone_with(SimConfig {
        // 4 % above the return level: 36 s of flight, less than the route's first leg.
        start_battery_percent: 24.0,
        ..SimConfig::default()
    });
    hw.set_job_active(true);
    let track = fly(&mut hw, 300);
    let last = track.last().unwrap();
    assert_eq!(last.state, Some(FlightState::Landed));
    assert!(last.distance_to_home_m.unwrap() < 0.01);
    assert!(last.battery_percent.unwrap() < 20.0);
    let farthest = track
        .iter()
        .map(|s| s.distance_to_home_m.unwrap())
        .fold(0.0, f64::max);
    assert!(farthest < 300.0, "{farthest}");
    // ... and it will not take off again below the return level.
    hw.set_job_active(false);
    hw.advance(SECOND);
    hw.set_job_active(true);
    assert!(fly(&mut hw, 10)
        .iter()
        .all(|s| s.state == Some(FlightState::Landed)));
}

#[test]
fn estop_lands_the_drone_where_it_is() {
    let mut hw = open(&HalConfig::example_sim_drone());
    hw.set_job_active(true);
    fly(&mut hw, 40);
    hw.set_output("estop", true).unwrap();
    let down = fly(&mut hw, 15);
    assert_eq!(down[0].state, Some(FlightState::Landing));
    assert_eq!(down[0].ground_speed_mps, Some(0.0));
    assert!(down[0].vertical_speed_mps.unwrap() < 0.0);
    let last = down.last().unwrap();
    assert_eq!(last.state, Some(FlightState::Landed));
    assert_eq!(last.estop_engaged, Some(true));
    assert!(last.distance_to_home_m.unwrap() > 50.0);
    // Not while the estop is on, even with the job still active.
    assert!(fly(&mut hw, 10)
        .iter()
        .all(|s| s.state == Some(FlightState::Landed)));
}

#[test]
fn the_charger_recharges_a_landed_drone() {
    let mut hw = drone_with(SimConfig {
        start_battery_percent: 50.0,
        ..SimConfig::default()
    });
    hw.set_output("charger", true).unwrap();
    hw.advance(Duration::from_secs(360));
    let status = hw.drone_status().unwrap();
    // 1C for 6 minutes is 10 %.
    assert!((status.battery_percent.unwrap() - 60.0).abs() < 1e-9);
    assert_eq!(status.battery_current_a, Some(-5.0));
}

fn depot() -> Hardware {
    open(&HalConfig::example_sim_depot())
}

fn depot_after(hw: &mut Hardware, dt: Duration) -> DepotStatus {
    hw.advance(dt);
    hw.depot_status().unwrap()
}

#[test]
fn the_door_opens_and_closes_over_time_and_the_switches_follow() {
    let mut hw = depot();
    assert_eq!(hw.depot_status().unwrap().door, Some(DoorState::Closed));
    assert!(hw.input("door_closed").unwrap());
    hw.set_output("door", true).unwrap();

    let halfway = depot_after(&mut hw, Duration::from_secs(4));
    assert_eq!(halfway.door, Some(DoorState::Opening));
    assert_eq!(halfway.door_closed, Some(false));
    assert!(!hw.input("door_closed").unwrap());
    assert!(!hw.input("door_open").unwrap());

    let open = depot_after(&mut hw, Duration::from_secs(4));
    assert_eq!(open.door, Some(DoorState::Open));
    assert!(hw.input("door_open").unwrap());

    hw.set_output("door", false).unwrap();
    assert_eq!(depot_after(&mut hw, SECOND).door, Some(DoorState::Closing));
    assert!(!hw.input("door_open").unwrap());
    assert_eq!(
        depot_after(&mut hw, Duration::from_secs(7)).door,
        Some(DoorState::Closed)
    );
    assert!(hw.input("door_closed").unwrap());
}

#[test]
fn estop_stops_the_door_where_it_is() {
    let mut hw = depot();
    hw.set_output("door", true).unwrap();
    hw.advance(Duration::from_secs(3));
    hw.set_output("estop", true).unwrap();
    let stopped = depot_after(&mut hw, Duration::from_secs(30));
    assert_eq!(stopped.door, Some(DoorState::Stopped));
    assert_eq!(stopped.estop_engaged, Some(true));
    assert!(!hw.input("door_closed").unwrap());
    assert!(!hw.input("door_open").unwrap());
    hw.set_output("estop", false).unwrap();
    assert_eq!(
        depot_after(&mut hw, Duration::from_secs(5)).door,
        Some(DoorState::Open)
    );
}

#[test]
fn the_drone_leaves_through_the_open_door_and_comes_back_to_charge() {
    let mut hw = open(&HalConfig {
        sim: SimConfig {
            kind: SimKind::Depot,
            start_battery_percent: 80.0,
            ..SimConfig::default()
        },
        ..HalConfig::example_sim_depot()
    });
    hw.set_output("charger", true).unwrap();
    let docked = depot_after(&mut hw, SECOND);
    assert_eq!(docked.drone_present, Some(true));
    assert_eq!(docked.charging, Some(true));
    assert!(hw.input("charging").unwrap());

    // The drone does not leave through a closed door.
    hw.set_job_active(true);
    assert_eq!(
        depot_after(&mut hw, Duration::from_secs(5)).drone_present,
        Some(true)
    );
    hw.set_output("door", true).unwrap();
    let gone = depot_after(&mut hw, Duration::from_secs(9));
    assert_eq!(gone.drone_present, Some(false));
    assert_eq!(gone.charging, Some(false));
    assert_eq!(gone.drone_battery_percent, None);
    assert!(!hw.input("drone_present").unwrap());

    // The job ends with the door closed: the drone waits outside until it opens.
    hw.set_output("door", false).unwrap();
    hw.set_job_active(false);
    assert_eq!(
        depot_after(&mut hw, Duration::from_secs(60)).drone_present,
        Some(false)
    );
    hw.set_output("door", true).unwrap();
    let back = depot_after(&mut hw, Duration::from_secs(9));
    assert_eq!(back.drone_present, Some(true));
    assert_eq!(back.charging, Some(true));
    let percent = back.drone_battery_percent.unwrap();
    assert!(percent < 80.0, "{percent}");
    let later = depot_after(&mut hw, Duration::from_secs(60))
        .drone_battery_percent
        .unwrap();
    assert!(later > percent, "{later} <= {percent}");

    hw.set_output("charger", false).unwrap();
    assert_eq!(depot_after(&mut hw, SECOND).charging, Some(false));
}

#[test]
fn depot_temperature_drifts_within_a_plausible_band() {
    let mut hw = depot();
    let readings: Vec<f64> = (0..120)
        .map(|_| {
            depot_after(&mut hw, Duration::from_secs(60))
                .temperature_c
                .unwrap()
        })
        .collect();
    let (low, high) = readings
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), t| (lo.min(*t), hi.max(*t)));
    assert!(high - low > 0.5, "no drift: {low}..{high}");
    assert!(low > 10.0 && high < 30.0, "{low}..{high}");
}

/// A scripted session: commands and time steps of uneven lengths, readings after each.
fn session(config: &HalConfig, slices: &[Duration]) -> Vec<String> {
    let mut hw = open(config);
    let mut readings = Vec::new();
    let kinds = (
        hw.output_names().contains(&"door".to_owned()),
        hw.sensor_names(),
    );
    for (i, dt) in slices.iter().enumerate() {
        match i {
            3 => hw.set_job_active(true),
            5 if kinds.0 => hw.set_output("door", true).unwrap(),
            40 => hw.set_job_active(false),
            _ => {}
        }
        hw.advance(*dt);
        if kinds.0 {
            readings.push(format!("{:?}", hw.depot_status().unwrap()));
        } else {
            readings.push(format!("{:?}", hw.drone_status().unwrap()));
        }
        for sensor in &kinds.1 {
            readings.push(format!("{:?}", hw.read_sensor(sensor).unwrap()));
        }
    }
    readings
}

fn uneven_slices() -> Vec<Duration> {
    (0..80u64)
        .map(|i| Duration::from_millis(250 + (i * 7919) % 4000))
        .collect()
}

#[test]
fn same_seed_and_steps_give_the_same_readings() {
    for config in [
        HalConfig::example_sim_drone(),
        HalConfig::example_sim_depot(),
    ] {
        let first = session(&config, &uneven_slices());
        assert_eq!(first, session(&config, &uneven_slices()));

        let mut reseeded = config.clone();
        reseeded.sim.seed += 1;
        assert_ne!(first, session(&reseeded, &uneven_slices()));
    }
}

#[test]
fn readings_depend_on_time_passed_not_on_how_it_was_sliced() {
    let mut whole = open(&HalConfig::example_sim_drone());
    let mut sliced = open(&HalConfig::example_sim_drone());
    whole.set_job_active(true);
    sliced.set_job_active(true);
    whole.advance(Duration::from_secs(90));
    for _ in 0..360 {
        sliced.advance(Duration::from_millis(250));
    }
    assert_eq!(
        whole.drone_status().unwrap(),
        sliced.drone_status().unwrap()
    );
    assert_eq!(
        whole.read_sensor("climate").unwrap(),
        sliced.read_sensor("climate").unwrap()
    );
    assert_eq!(whole.sim_time(), Some(Duration::from_secs(90)));
}
