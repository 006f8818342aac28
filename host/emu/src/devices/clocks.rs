//! Clock tree model: the frequencies the firmware's RCC setup gives the core, the buses and the
//! kernel clocks (HSE/HSI/CSI, PLL1/PLL2, D1/D2 prescalers, TIMPRE, FDCAN and USART sources).

use super::HSE_HZ;
use crate::peripherals::{Peripherals, RCC};

const HSI_HZ: u64 = 64_000_000;
const CSI_HZ: u64 = 4_000_000;

/// Frequencies derived from the RCC registers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clocks {
    /// The Cortex-M7 (sys_ck / D1CPRE).
    pub cpu_hz: u64,
    pub hclk_hz: u64,
    pub pclk1_hz: u64,
    pub pclk2_hz: u64,
    /// Timer kernel clocks on APB1 (TIM2) and APB2 (TIM1).
    pub tim_apb1_hz: u64,
    pub tim_apb2_hz: u64,
    pub fdcan_hz: u64,
    pub usart234578_hz: u64,
}

fn ahb_div(bits: u32) -> u64 {
    match bits & 0xF {
        b if b < 8 => 1,
        b => [2, 4, 8, 16, 64, 128, 256, 512][(b - 8) as usize],
    }
}

fn apb_div(bits: u32) -> u64 {
    match bits & 7 {
        b if b < 4 => 1,
        b => [2, 4, 8, 16][(b - 4) as usize],
    }
}

impl Clocks {
    /// After reset: everything on HSI (64 MHz).
    pub const RESET: Clocks = Clocks {
        cpu_hz: HSI_HZ,
        hclk_hz: HSI_HZ,
        pclk1_hz: HSI_HZ,
        pclk2_hz: HSI_HZ,
        tim_apb1_hz: HSI_HZ,
        tim_apb2_hz: HSI_HZ,
        fdcan_hz: HSE_HZ,
        usart234578_hz: HSI_HZ,
    };

    /// The clock tree the RCC registers describe.
    pub fn from_rcc(p: &Peripherals) -> Self {
        let r = |off: u32| p.peek(RCC + off);
        let cr = r(0x00);
        let hsi = HSI_HZ >> ((cr >> 3) & 3);
        let pllcksel = r(0x28);
        let src = match pllcksel & 3 {
            0 => hsi,
            1 => CSI_HZ,
            2 => HSE_HZ,
            _ => 0,
        };
        // (P, Q) outputs of PLL n (1 or 2).
        let pll = |divm: u32, divr: u32| -> (u64, u64) {
            let m = u64::from(divm);
            if m == 0 || src == 0 {
                return (0, 0);
            }
            let vco = src / m * (u64::from(divr & 0x1FF) + 1);
            let p = u64::from((divr >> 9) & 0x7F) + 1;
            let q = u64::from((divr >> 16) & 0x7F) + 1;
            (vco / p, vco / q)
        };
        let (pll1p, pll1q) = pll((pllcksel >> 4) & 0x3F, r(0x30));
        let (_, pll2q) = pll((pllcksel >> 12) & 0x3F, r(0x38));
        let cfgr = r(0x10);
        let sys = match cfgr & 7 {
            0 => hsi,
            1 => CSI_HZ,
            2 => HSE_HZ,
            _ => pll1p,
        };
        let d1cfgr = r(0x18);
        let cpu = sys / ahb_div(d1cfgr >> 8);
        let hclk = cpu / ahb_div(d1cfgr);
        let d2cfgr = r(0x1C);
        let (div1, div2) = (apb_div(d2cfgr >> 4), apb_div(d2cfgr >> 8));
        let (pclk1, pclk2) = (hclk / div1, hclk / div2);
        let timpre = cfgr & (1 << 15) != 0;
        let tim = |pclk: u64, div: u64| match (timpre, div) {
            (false, 1) => pclk,
            (false, _) => 2 * pclk,
            (true, d) if d <= 4 => hclk,
            (true, _) => 4 * pclk,
        };
        let fdcan = match (r(0x50) >> 28) & 3 {
            0 => HSE_HZ,
            1 => pll1q,
            _ => pll2q,
        };
        let usart = match r(0x54) & 7 {
            3 => hsi,
            4 => CSI_HZ,
            _ => pclk1,
        };
        Self {
            cpu_hz: cpu.max(1),
            hclk_hz: hclk,
            pclk1_hz: pclk1,
            pclk2_hz: pclk2,
            tim_apb1_hz: tim(pclk1, div1).max(1),
            tim_apb2_hz: tim(pclk2, div2).max(1),
            fdcan_hz: fdcan,
            usart234578_hz: usart.max(1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stm32h755::supply::SupplyConfig;

    #[test]
    fn embassy_clock_tree() {
        // What the firmware's clock_config() writes: HSE 8 MHz, PLL1 /1 x100, P /2, Q /10,
        // sys = PLL1, AHB /2, APB /2.
        let mut p = Peripherals::new(SupplyConfig::DirectSmps);
        let site = Default::default();
        p.write(RCC + 0x28, 4, 2 | (1 << 4), site);
        p.write(RCC + 0x30, 4, 99 | (1 << 9) | (9 << 16), site);
        p.write(RCC + 0x10, 4, 3, site);
        p.write(RCC + 0x18, 4, 0b1000, site);
        p.write(RCC + 0x1C, 4, (0b100 << 4) | (0b100 << 8), site);
        p.write(RCC + 0x50, 4, 1 << 28, site);
        let c = Clocks::from_rcc(&p);
        assert_eq!(c.cpu_hz, 400_000_000);
        assert_eq!(c.hclk_hz, 200_000_000);
        assert_eq!(c.pclk1_hz, 100_000_000);
        assert_eq!(c.tim_apb1_hz, 200_000_000);
        assert_eq!(c.fdcan_hz, 80_000_000);
        assert_eq!(c.usart234578_hz, 100_000_000);
        assert_eq!(
            Clocks::from_rcc(&Peripherals::new(SupplyConfig::DirectSmps)).cpu_hz,
            64_000_000
        );
    }
}
