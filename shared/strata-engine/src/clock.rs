//! Time as Strata reads it.
//!
//! Two kinds of time, from one [`Clock`] per engine:
//!
//! - **Wall-clock time** ([`Clock::now_micros`]): microseconds since the Unix
//!   epoch, for commit stamps, manifest ages and retention.
//! - **Elapsed time** ([`Clock::tick`], [`Clock::since`]): how old a view or a
//!   cached descriptor is. It must count time the instance spent frozen or
//!   suspended: a Lambda instance thawed after an hour must not believe its
//!   view is a second old. `Instant` (CLOCK_MONOTONIC) stops while the
//!   machine is suspended, so a tick is the larger of CLOCK_BOOTTIME (which
//!   counts suspension) and the wall clock's advance (which a thawed
//!   instance's NTP client corrects), taken reading by reading: each tick
//!   adds the larger of the two advances since the previous reading, and a
//!   clock stepped backwards adds nothing, so ticks always move on with
//!   BOOTTIME. Either reading running fast only makes views look older,
//!   which costs a refresh, never a wrong answer.
//!
//! Tests make a clock whose wall time is skewed ([`Clock::skewed`]) or jump
//! one forward ([`Clock::jump`]: time passes while the instance is frozen).
//! The free functions are the real wall clock, for code outside the engine.

use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The real wall clock, µs since the epoch (0 before the epoch).
pub fn now_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or_default()
}

/// The real wall clock, ms since the epoch.
pub fn now_ms() -> u64 {
    now_micros() / 1000
}

/// CLOCK_BOOTTIME in µs (monotonic, counts suspension); None where the
/// platform has no such clock.
#[cfg(target_os = "linux")]
fn boottime_micros() -> Option<u64> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec to the pointer it is given,
    // which points at a live local.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1000)
}

#[cfg(not(target_os = "linux"))]
fn boottime_micros() -> Option<u64> {
    None
}

/// A reading of elapsed time (µs on the clock's own timeline).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Tick(u64);

impl Tick {
    /// This tick less `d` (saturating at the clock's start).
    pub fn minus(self, d: Duration) -> Tick {
        Tick(self.0.saturating_sub(d.as_micros() as u64))
    }
}

/// The raw clocks at the previous reading, and the elapsed time so far.
#[derive(Clone, Copy)]
struct Reading {
    wall: u64,
    boot: Option<u64>,
    elapsed: u64,
}

struct Inner {
    last: Mutex<Reading>,
    /// Added to wall time (tests: this instance's clock is off).
    skew_micros: AtomicI64,
    /// Added to both timelines (tests: time passed while frozen).
    jumped_micros: AtomicU64,
}

/// An engine's clock; cheap to clone (clones share one clock).
#[derive(Clone)]
pub struct Clock(Arc<Inner>);

impl fmt::Debug for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Clock(skew {} µs, jumped {} µs)",
            self.0.skew_micros.load(Ordering::Relaxed),
            self.0.jumped_micros.load(Ordering::Relaxed)
        )
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The machine's clocks.
    pub fn system() -> Clock {
        Clock(Arc::new(Inner {
            last: Mutex::new(Reading {
                wall: now_micros(),
                boot: boottime_micros(),
                elapsed: 0,
            }),
            skew_micros: AtomicI64::new(0),
            jumped_micros: AtomicU64::new(0),
        }))
    }

    /// A clock whose wall time is `skew_micros` ahead (negative: behind) of
    /// the machine's: an instance with a badly set clock.
    pub fn skewed(skew_micros: i64) -> Clock {
        let c = Self::system();
        c.0.skew_micros.store(skew_micros, Ordering::Relaxed);
        c
    }

    /// Moves wall and elapsed time forward by `d` at once, as a frozen or
    /// suspended instance sees when it resumes.
    pub fn jump(&self, d: Duration) {
        self.0
            .jumped_micros
            .fetch_add(d.as_micros() as u64, Ordering::Relaxed);
    }

    /// Wall-clock µs since the epoch.
    pub fn now_micros(&self) -> u64 {
        let jumped = self.0.jumped_micros.load(Ordering::Relaxed) as i64;
        let skew = self.0.skew_micros.load(Ordering::Relaxed);
        (now_micros() as i64)
            .saturating_add(skew)
            .saturating_add(jumped)
            .max(0) as u64
    }

    /// Wall-clock ms since the epoch.
    pub fn now_ms(&self) -> u64 {
        self.now_micros() / 1000
    }

    /// Now, on the elapsed-time timeline.
    pub fn tick(&self) -> Tick {
        let (wall, boot) = (now_micros(), boottime_micros());
        let mut last = self.0.last.lock().unwrap_or_else(|p| p.into_inner());
        let d_wall = wall.saturating_sub(last.wall);
        let d_boot = match (last.boot, boot) {
            (Some(a), Some(b)) => b.saturating_sub(a),
            _ => 0,
        };
        *last = Reading {
            wall,
            boot,
            elapsed: last.elapsed + d_wall.max(d_boot),
        };
        Tick(last.elapsed + self.0.jumped_micros.load(Ordering::Relaxed))
    }

    /// Time elapsed since `t`.
    pub fn since(&self, t: Tick) -> Duration {
        Duration::from_micros(self.tick().0.saturating_sub(t.0))
    }

    /// Whether `t` is set and younger than `max_age`.
    pub fn fresh(&self, t: Option<Tick>, max_age: Duration) -> bool {
        t.is_some_and(|t| self.since(t) < max_age)
    }
}

/// RFC 3339 without a zone (UTC), with milliseconds: DynamoDB's stream labels.
pub fn iso_time(ms: u64) -> String {
    // Seconds precision, UTC, without a date library: civil-from-days.
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_advance_and_jumps_count_as_elapsed_time() {
        let c = Clock::system();
        let a = c.tick();
        std::thread::sleep(Duration::from_millis(5));
        assert!(c.since(a) >= Duration::from_millis(4));
        let before = c.now_micros();
        c.jump(Duration::from_secs(3600));
        assert!(c.since(a) >= Duration::from_secs(3600));
        assert!(c.now_micros() >= before + 3_600_000_000);
        assert!(!c.fresh(Some(a), Duration::from_secs(60)));
        assert!(!c.fresh(None, Duration::from_secs(60)));
        assert!(c.fresh(Some(c.tick()), Duration::from_secs(60)));
    }

    #[test]
    fn skewed_clocks_move_wall_time_only() {
        let c = Clock::skewed(-60_000_000);
        assert!(c.now_micros() + 59_000_000 < now_micros());
        let t = c.tick();
        assert!(c.since(t) < Duration::from_secs(1));
    }
}
