//! A bench's instruments as resources, before any driver is bound to them: the device paths
//! the rig config names or, for a simulated bench, the bench started and its pseudo-terminals.

use bench_config::{BoardBackend, ProbeBackend, RigConfig};
use rig_instruments::DebugProbe;
use rig_sim::SimulatedBench;
use rig_verify::rig::RigError;

/// The serial devices of a bench's instruments.
#[derive(Clone, Debug, serde::Serialize)]
pub struct BenchPorts {
    pub slcan: String,
    pub sump: String,
    pub relay: String,
    pub telemetry: String,
}

impl BenchPorts {
    /// The simulated bench's pseudo-terminals.
    pub(crate) fn of(bench: &SimulatedBench) -> Self {
        let p = &bench.ports;
        Self {
            slcan: p.slcan.clone(),
            sump: p.sump.clone(),
            relay: p.relay.clone(),
            telemetry: p.telemetry.clone(),
        }
    }

    /// The device paths a hardware rig config names.
    fn configured(config: &RigConfig) -> Self {
        Self {
            slcan: config.can.port.clone().unwrap_or_default(),
            sump: config.pulse_meter.port.clone(),
            // Only serial switches have a port; command and sysfs switches ignore it.
            relay: config.power.port.clone().unwrap_or_default(),
            telemetry: config.telemetry.port.clone(),
        }
    }
}

/// What a rig config says is attached, made reachable: for `board.backend = "simulated"` a
/// fresh simulated bench (stopped when this is dropped).
pub struct BenchResources {
    pub ports: BenchPorts,
    simulated: Option<SimulatedBench>,
    /// Held while the resources are in use ([`super::bench_lock`]).
    _lock: Option<super::bench_lock::BenchLock>,
}

impl BenchResources {
    /// For `doctor` and `flash`: a simulated bench starts as the board model running the logic,
    /// whatever `firmware.kind` says (they check instruments and the command path, not
    /// firmware), except with `probe.backend = "probe-rs"`: probe-rs needs the emulated board's
    /// debug port, so the bench starts as the rig config says.
    pub fn start(config: &RigConfig) -> Result<Self, RigError> {
        let lock = super::bench_lock::acquire(config)?;
        let resources = match config.backend {
            BoardBackend::Simulated if config.probe.backend == ProbeBackend::ProbeRs => {
                Ok(Self::simulated(super::start_simulated_bench(config)?))
            }
            BoardBackend::Simulated => Ok(Self::simulated(
                SimulatedBench::start(super::simulated_bench_config(config))
                    .map_err(RigError::Simulation)?,
            )),
            BoardBackend::Hardware => Ok(Self::hardware(config)),
        };
        resources.map(|r| Self {
            _lock: Some(lock),
            ..r
        })
    }

    pub(crate) fn simulated(bench: SimulatedBench) -> Self {
        Self {
            ports: BenchPorts::of(&bench),
            simulated: Some(bench),
            _lock: None,
        }
    }

    pub(crate) fn hardware(config: &RigConfig) -> Self {
        Self {
            ports: BenchPorts::configured(config),
            simulated: None,
            _lock: None,
        }
    }

    pub fn is_simulated(&self) -> bool {
        self.simulated.is_some()
    }

    /// The simulated bench's debug probe ([`super::bench_probe`]); `None` on hardware.
    pub fn bench_probe(
        &self,
        config: &RigConfig,
    ) -> Option<Result<Option<Box<dyn DebugProbe>>, RigError>> {
        self.simulated
            .as_ref()
            .map(|b| super::bench_probe(config, b))
    }

    pub(crate) fn into_bench(self) -> Option<SimulatedBench> {
        self.simulated
    }
}
