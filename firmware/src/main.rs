//! Board binary of the oil-temperature gauge: NUCLEO-H755ZI-Q, Cortex-M7 core.
//!
//! Thin glue only: every decision (decoding, OBD-II polling, calibration, slew, failsafe, the
//! status line, the storage records) lives in `gauge-logic`, whose crate docs hold the contract
//! table. This file wires the peripherals to it and keeps the 1 ms loop from ever blocking.
#![no_std]
#![no_main]

use core::fmt::Write as _;
use core::mem::MaybeUninit;

use embassy_embedded_hal::adapter::BlockingAsync;
use embassy_executor::Spawner;
use embassy_futures::join::join4;
use embassy_stm32::can::config::GlobalFilter;
use embassy_stm32::can::enums::BusErrorMode;
use embassy_stm32::can::filter::{Action, FilterType, StandardFilter, StandardFilterSlot};
use embassy_stm32::can::{self, CanConfigurator, CanRx, CanTx};
use embassy_stm32::flash::Flash;
use embassy_stm32::gpio::{Level, Output, OutputType, Speed};
use embassy_stm32::mode::Async;
use embassy_stm32::rcc::{self, mux, SMPSSupplyVoltage as Smps};
use embassy_stm32::time::Hertz;
use embassy_stm32::timer::low_level::CountingMode;
use embassy_stm32::timer::simple_pwm::{PwmPin, SimplePwm};
use embassy_stm32::usart::{self, UartTx};
use embassy_stm32::{bind_interrupts, dma, pac, peripherals, Config, SharedData};
use embassy_sync::blocking_mutex::raw::NoopRawMutex;
use embassy_sync::channel::Channel;
use embassy_sync::signal::Signal;

include!(concat!(env!("OUT_DIR"), "/build_info.rs"));
use embassy_time::{Duration, Instant, Ticker, Timer};
use embedded_can::{Id, StandardId};
use gauge_logic::calibration::Calibration;
use gauge_logic::frame::CanFrame;
use gauge_logic::gauge::{Gauge, GaugeTiming};
use gauge_logic::obd;
use gauge_logic::signal::OIL_TEMP_SIGNAL;
use gauge_logic::storage::{Records, STORAGE_OFFSETS};
use gauge_logic::supply::{SupplyConfig, FIRMWARE_SUPPLY};
use gauge_logic::telemetry::{BusState, StatusLine};
use panic_halt as _;

bind_interrupts!(struct Irqs {
    FDCAN1_IT0 => can::IT0InterruptHandler<peripherals::FDCAN1>;
    FDCAN1_IT1 => can::IT1InterruptHandler<peripherals::FDCAN1>;
    DMA1_STREAM0 => dma::InterruptHandler<peripherals::DMA1_CH0>;
});

/// embassy's dual-core init record, in SRAM4 (`.ram_d3`, see memory.x) so that a Cortex-M4
/// image could find it at the same address. This firmware runs on the Cortex-M7 only.
#[link_section = ".ram_d3"]
static SHARED_DATA: MaybeUninit<SharedData> = MaybeUninit::uninit();

/// The supply written to PWR_CR3, derived from gauge-logic's one constant so that the
/// `supply-ldo` feature (the deliberately wrong build) changes exactly this.
const SUPPLY: rcc::SupplyConfig = match FIRMWARE_SUPPLY {
    SupplyConfig::Ldo => rcc::SupplyConfig::LDO,
    SupplyConfig::DirectSmps => rcc::SupplyConfig::DirectSMPS,
    SupplyConfig::Smps1v8FeedsLdo => rcc::SupplyConfig::SMPSLDO(Smps::V1_8),
    SupplyConfig::Smps2v5FeedsLdo => rcc::SupplyConfig::SMPSLDO(Smps::V2_5),
    SupplyConfig::Smps1v8ExternalAndLdo => rcc::SupplyConfig::SMPSExternalLDO(Smps::V1_8),
    SupplyConfig::Smps2v5ExternalAndLdo => rcc::SupplyConfig::SMPSExternalLDO(Smps::V2_5),
    SupplyConfig::Smps1v8ExternalBypass => rcc::SupplyConfig::SMPSExternalLDOBypass(Smps::V1_8),
    SupplyConfig::Smps2v5ExternalBypass => rcc::SupplyConfig::SMPSExternalLDOBypass(Smps::V2_5),
    SupplyConfig::ExternalSource => rcc::SupplyConfig::SMPSDisabledLDOBypass,
};

/// Servo frame: 50 Hz.
const SERVO_PERIOD_US: u64 = 20_000;

/// Frames between the CAN tasks and the 1 ms loop. Full queues drop frames instead of blocking.
type Frames<const N: usize> = Channel<NoopRawMutex, CanFrame, N>;

fn clock_config() -> Config {
    let mut config = Config::default();
    let rcc = &mut config.rcc;
    rcc.supply_config = SUPPLY;
    // embassy's default is VOS0; Direct SMPS on the H75x allows VOS1 (400 MHz) at most.
    rcc.voltage_scale = rcc::VoltageScale::Scale1;
    // 8 MHz from the ST-LINK's MCO: an external clock, not a crystal.
    rcc.hse = Some(rcc::Hse {
        freq: Hertz(8_000_000),
        mode: rcc::HseMode::Bypass,
    });
    // 8 MHz / 1 = 8 MHz PLL input, x100 = 800 MHz VCO; P /2 = 400 MHz core, Q /10 = 80 MHz FDCAN.
    rcc.pll1 = Some(rcc::Pll {
        source: rcc::PllSource::HSE,
        prediv: rcc::PllPreDiv::DIV1,
        mul: rcc::PllMul::MUL100,
        divp: Some(rcc::PllDiv::DIV2),
        divq: Some(rcc::PllDiv::DIV10),
        divr: None,
    });
    rcc.sys = rcc::Sysclk::PLL1_P;
    rcc.ahb_pre = rcc::AHBPrescaler::DIV2; // 200 MHz, the VOS1 limit
    rcc.apb1_pre = rcc::APBPrescaler::DIV2; // 100 MHz each, the VOS1 limit
    rcc.apb2_pre = rcc::APBPrescaler::DIV2;
    rcc.apb3_pre = rcc::APBPrescaler::DIV2;
    rcc.apb4_pre = rcc::APBPrescaler::DIV2;
    // 80 MHz = 10 x 16 time quanta at 500 kbit/s.
    rcc.mux.fdcansel = mux::Fdcansel::PLL1_Q;
    config
}

/// Servo pulse width -> compare value (`max_duty` ticks = one 20 ms period).
fn pulse_ticks(pulse_us: u16, max_duty: u32) -> u32 {
    let ticks = u64::from(pulse_us) * u64::from(max_duty) / SERVO_PERIOD_US;
    ticks.min(u64::from(max_duty)) as u32
}

/// One of gauge-logic's 11-bit IDs (constants: the broadcast and the OBD-II reply IDs).
fn standard_id(id: u32) -> StandardId {
    u16::try_from(id)
        .ok()
        .and_then(StandardId::new)
        .expect("gauge-logic's IDs are 11-bit")
}

/// The OBD-II reply IDs (0x7E8..=0x7EF) as one ID/mask pair: an aligned block of 2^n IDs.
const REPLY_FILTER: (u16, u16) = {
    let (first, last) = (*obd::RESPONSE_IDS.start(), *obd::RESPONSE_IDS.end());
    let span = last - first;
    assert!(
        (span + 1).is_power_of_two() && first & span == 0 && last <= 0x7FF,
        "the reply IDs must be an aligned power-of-two block of 11-bit IDs"
    );
    (first as u16, (!span & 0x7FF) as u16)
};

/// A received bus frame as gauge-logic sees it; remote frames carry no data and are dropped.
fn from_bus(frame: &can::Frame) -> Option<CanFrame> {
    if frame.header().rtr() {
        return None;
    }
    match frame.id() {
        Id::Standard(id) => CanFrame::standard(id.as_raw(), frame.data()),
        Id::Extended(id) => CanFrame::extended(id.as_raw(), frame.data()),
    }
}

fn to_bus(frame: &CanFrame) -> Option<can::Frame> {
    if frame.extended {
        can::Frame::new_extended(frame.id, frame.payload()).ok()
    } else {
        can::Frame::new_standard(u16::try_from(frame.id).ok()?, frame.payload()).ok()
    }
}

/// Moves received frames to the 1 ms loop.
async fn can_receive(mut rx: CanRx<'_>, frames: &Frames<16>) {
    loop {
        match rx.read().await {
            Ok(envelope) => {
                if let Some(frame) = from_bus(&envelope.frame) {
                    let _ = frames.try_send(frame);
                }
            }
            // Bus errors (no ACK, error passive, bus-off) are reported here too, possibly on
            // every attempt; the controller retransmits and recovers from bus-off by itself.
            // Pausing keeps a broken bus from starving the other loops.
            Err(_) => Timer::after(Duration::from_millis(1)).await,
        }
    }
}

/// Sends the OBD-II requests. Waits here, not in the 1 ms loop, when the bus cannot take them.
async fn can_transmit(mut tx: CanTx<'_>, frames: &Frames<2>) {
    loop {
        let frame = frames.receive().await;
        if let Some(frame) = to_bus(&frame) {
            let _ = tx.write(&frame).await;
        }
    }
}

/// Writes each status line by DMA so that the 1 ms loop never waits for the UART.
async fn telemetry(mut uart: UartTx<'_, Async>, lines: &Signal<NoopRawMutex, StatusLine>) {
    loop {
        let line = lines.wait().await;
        // 128 bytes hold the longest possible line; a formatting error would only truncate it.
        let mut text = heapless::String::<128>::new();
        let _ = write!(text, "{line}\r\n");
        let _ = uart.write(text.as_bytes()).await;
    }
}

#[embassy_executor::main]
async fn main(_spawner: Spawner) {
    // Kept in the image (the linker would drop an unread static): the rig reads it back.
    core::hint::black_box(&GAUGE_BUILD_INFO);
    // Writes PWR_CR3 (once per power-on) and waits for the supply, then sets up the clocks.
    let p = embassy_stm32::init_primary(clock_config(), &SHARED_DATA);
    let timing = GaugeTiming::DEFAULT;

    // Needle parked and red LED on before anything slow (a flash erase can take seconds).
    let servo_pin = PwmPin::new(p.PE9, OutputType::PushPull);
    let pwm = SimplePwm::new(
        p.TIM1,
        Some(servo_pin),
        None,
        None,
        None,
        Hertz(50),
        CountingMode::EdgeAlignedUp,
    );
    let mut servo = pwm.split().ch1;
    let max_duty = servo.max_duty_cycle();
    servo.set_duty_cycle(pulse_ticks(timing.park_pulse_us, max_duty));
    servo.enable();
    let mut failsafe_led = Output::new(p.PB14, Level::High, Speed::Low);

    let mut uart_config = usart::Config::default();
    uart_config.baudrate = gauge_logic::telemetry::BAUD; // 8N1 is the default framing
    let uart = UartTx::new(p.USART3, p.PD8, p.DMA1_CH0, Irqs, uart_config)
        .expect("115200 baud is reachable from the 100 MHz APB1 clock");

    // FDCAN1, 500 kbit/s classic. Acceptance filters: only the broadcast ID and the OBD-II
    // reply IDs reach RX FIFO 0, so that traffic on other IDs (a loaded bus) cannot fill the
    // FIFO and crowd the broadcast out; everything else, extended and remote frames included,
    // is dropped by the controller (gauge-logic still checks every frame it gets).
    let mut can_config = CanConfigurator::new(p.FDCAN1, p.PD0, p.PD1, Irqs);
    can_config.set_bitrate(500_000);
    can_config.set_config(
        can_config
            .config()
            .set_global_filter(GlobalFilter::reject_all()),
    );
    let broadcast_id = standard_id(OIL_TEMP_SIGNAL.frame_id);
    can_config.properties().set_standard_filter(
        StandardFilterSlot::_0,
        StandardFilter {
            filter: FilterType::DedicatedSingle(broadcast_id),
            action: Action::StoreInFifo0,
        },
    );
    // The reply IDs as a classic ID/mask filter, not `FilterType::Range`: embassy-stm32 0.6.0
    // writes a range's bounds into SFID1/SFID2 the wrong way round (fixed upstream in
    // embassy-rs/embassy#6241), and an M_CAN range with SFID1 > SFID2 matches nothing.
    can_config.properties().set_standard_filter(
        StandardFilterSlot::_1,
        StandardFilter {
            filter: FilterType::BitMask {
                filter: REPLY_FILTER.0,
                mask: REPLY_FILTER.1,
            },
            action: Action::StoreInFifo0,
        },
    );
    // Bus-off recovery is embassy's (its interrupt handler clears CCCR.INIT on bus-off, the
    // controller rejoins after 129 x 11 recessive bits): the default, said here because the
    // needle's return after a bus fault depends on it.
    can_config.set_config(can_config.config().set_automatic_bus_off_recovery(true));
    let (can_tx, can_rx, can_properties) = can_config.into_normal_mode().split();

    // Boot counter and calibration; the gauge must work even when storage does not.
    let flash = BlockingAsync::new(Flash::new_blocking(p.FLASH));
    let (boot_count, calibration) = match Records::new(flash, STORAGE_OFFSETS) {
        Ok(mut records) => match records.on_boot().await {
            Ok(boot) => (boot.boot_count, boot.calibration),
            Err(_) => (0, Calibration::DEFAULT),
        },
        Err(_) => (0, Calibration::DEFAULT),
    };

    let received = Frames::<16>::new();
    let to_send = Frames::<2>::new();
    let status = Signal::<NoopRawMutex, StatusLine>::new();

    let gauge_loop = async {
        let mut gauge = Gauge::new(calibration, timing, Instant::now().as_millis());
        let mut ticker = Ticker::every(Duration::from_millis(1));
        let mut next_status_ms = 0;
        loop {
            ticker.next().await;
            let now_ms = Instant::now().as_millis();
            while let Ok(frame) = received.try_receive() {
                gauge.on_frame(now_ms, &frame);
            }
            let out = gauge.poll(now_ms);
            servo.set_duty_cycle(pulse_ticks(out.pulse_us, max_duty));
            failsafe_led.set_level(if out.failsafe {
                Level::High
            } else {
                Level::Low
            });
            if let Some(frame) = out.transmit {
                // A full queue means the bus is not taking frames: drop this request.
                let _ = to_send.try_send(frame);
            }
            if now_ms >= next_status_ms {
                next_status_ms = now_ms + 1000;
                status.signal(StatusLine {
                    uptime_ms: now_ms,
                    temperature: gauge.temperature(),
                    source: gauge.source(),
                    pulse_us: out.pulse_us,
                    // What the chip latched, not what this build asked for.
                    pwr_cr3: pac::PWR.cr3().read().0,
                    boot_count,
                    failsafe: out.failsafe,
                    broadcasts: Some(gauge.broadcasts()),
                    bus: Some(match can_properties.bus_error_mode() {
                        BusErrorMode::ErrorActive => BusState::Active,
                        BusErrorMode::ErrorPassive => BusState::Passive,
                        BusErrorMode::BusOff => BusState::Off,
                    }),
                });
            }
        }
    };

    join4(
        gauge_loop,
        can_receive(can_rx, &received),
        can_transmit(can_tx, &to_send),
        telemetry(uart, &status),
    )
    .await;
}
