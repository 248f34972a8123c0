//! Wall-clock time as Strata stamps it: microseconds (and milliseconds)
//! since the Unix epoch; 0 if the clock is before the epoch.

use std::time::{SystemTime, UNIX_EPOCH};

pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

pub fn now_ms() -> u64 {
    now_micros() / 1000
}
