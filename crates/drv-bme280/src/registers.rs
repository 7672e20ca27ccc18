//! The BME280 register map (Bosch BST-BME280-DS002, section 5.3 table 18, and section 5.4).
//!
//! Shared by the adapter, which reads a few registers the community driver does not expose,
//! and the simulated chip.

/// 7-bit I2C address with SDO tied to GND (section 6.2).
pub const ADDRESS_PRIMARY: u8 = 0x76;
/// 7-bit I2C address with SDO tied to VDDIO (section 6.2).
pub const ADDRESS_SECONDARY: u8 = 0x77;

/// Start of the first calibration block, `dig_T1` to `dig_H1` (section 4.2.2, table 16).
pub const CALIBRATION_1: u8 = 0x88;
/// `id`: reads [`CHIP_ID_BME280`] (section 5.4.1).
pub const CHIP_ID: u8 = 0xD0;
/// `reset`: writing [`SOFT_RESET`] resets the chip; reads 0x00 (section 5.4.2).
pub const RESET: u8 = 0xE0;
/// Start of the second calibration block, `dig_H2` to `dig_H6` (section 4.2.2, table 16).
pub const CALIBRATION_2: u8 = 0xE1;
/// `ctrl_hum`: humidity oversampling; takes effect at the next `ctrl_meas` write (5.4.3).
pub const CTRL_HUM: u8 = 0xF2;
/// `status`: conversion and NVM-copy flags (section 5.4.4).
pub const STATUS: u8 = 0xF3;
/// `ctrl_meas`: temperature and pressure oversampling and the sensor mode (section 5.4.5).
pub const CTRL_MEAS: u8 = 0xF4;
/// `config`: standby time, IIR filter, 3-wire SPI (section 5.4.6).
pub const CONFIG: u8 = 0xF5;
/// Start of the data block: `press` 0xF7–0xF9, `temp` 0xFA–0xFC, `hum` 0xFD–0xFE
/// (sections 5.4.7 to 5.4.9).
pub const DATA: u8 = 0xF7;
/// Last register of the data block.
pub const DATA_END: u8 = 0xFE;

/// What [`CHIP_ID`] reads on a BME280.
pub const CHIP_ID_BME280: u8 = 0x60;
/// What [`CHIP_ID`] reads on a BMP280, which has no humidity sensor; the community driver
/// accepts it, the adapter does not.
pub const CHIP_ID_BMP280: u8 = 0x58;
/// The only value whose write to [`RESET`] resets the chip.
pub const SOFT_RESET: u8 = 0xB6;

/// `status.measuring`: a conversion is running.
pub const STATUS_MEASURING: u8 = 0b0000_1000;
/// `status.im_update`: NVM data are being copied to the image registers.
pub const STATUS_IM_UPDATE: u8 = 0b0000_0001;

/// `ctrl_hum.osrs_h`.
pub const OSRS_H_MASK: u8 = 0b0000_0111;
/// `ctrl_meas.osrs_t`.
pub const OSRS_T_MASK: u8 = 0b1110_0000;
pub const OSRS_T_SHIFT: u8 = 5;
/// `ctrl_meas.osrs_p`.
pub const OSRS_P_MASK: u8 = 0b0001_1100;
pub const OSRS_P_SHIFT: u8 = 2;
/// `osrs_h`, `osrs_t` and `osrs_p` value for 1x oversampling (sections 5.4.3 and 5.4.5);
/// 000 skips the measurement.
pub const OVERSAMPLING_1X: u8 = 0b001;
/// `ctrl_meas.mode` (section 5.4.5): 00 sleep, 01 and 10 forced, 11 normal.
pub const MODE_MASK: u8 = 0b0000_0011;
pub const MODE_SLEEP: u8 = 0b00;
pub const MODE_FORCED: u8 = 0b01;
pub const MODE_NORMAL: u8 = 0b11;

/// `config.filter`: the IIR filter coefficient, 000 for off.
pub const FILTER_MASK: u8 = 0b0001_1100;
/// The bits of `config` that exist: `t_sb`, `filter` and `spi3w_en` (bit 1 is reserved).
pub const CONFIG_WRITABLE: u8 = 0b1111_1101;

/// What a 20-bit data register holds after reset or when its measurement is skipped
/// (oversampling 000), section 5.4.5 and table 18.
pub const SKIPPED_20_BIT: u32 = 0x8_0000;
/// The same for the 16-bit humidity register.
pub const SKIPPED_16_BIT: u32 = 0x8000;
