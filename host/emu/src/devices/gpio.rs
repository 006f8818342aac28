//! GPIO output model: BSRR set/reset writes applied to ODR.

/// GPIOx_BSRR: set bits 0..15, reset bits 16..31 (set wins), applied to ODR.
pub fn gpio_bsrr(odr: u32, value: u32) -> u32 {
    let set = value & 0xFFFF;
    let reset = (value >> 16) & !set;
    ((odr & !reset) | set) & 0xFFFF
}
