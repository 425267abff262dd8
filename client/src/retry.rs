//! Retry with exponential backoff and full jitter (the AWS architecture blog's "full jitter":
//! sleep a uniform time in `0..=min(cap, base * 2^attempt)`), for the side channels.
//!
//! Only what can succeed on a second try is retried: 429, 502, 503, 504 and network errors
//! (connection refused or reset, timeouts). A `Retry-After` (seconds or an HTTP date) is a
//! floor on the wait. Attempts and the total time spent are both bounded. Pure: the caller
//! brings the random numbers and the clock.

use std::time::{Duration, SystemTime};

/// The policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included (1: never retry).
    pub max_attempts: u32,
    /// The first backoff's upper bound; doubles with each retry.
    pub base: Duration,
    /// No single wait's upper bound exceeds this (a `Retry-After` may ask for more).
    pub cap: Duration,
    /// Give up once this much time has passed since the first try, or when the next wait
    /// would end past it.
    pub total: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
            total: Duration::from_secs(30),
        }
    }
}

/// What a try ended with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// 2xx.
    Success,
    /// An HTTP status other than 2xx, with its `Retry-After` if any.
    Status {
        /// The status.
        code: u16,
        /// The wait the server asked for.
        retry_after: Option<Duration>,
    },
    /// No answer: connection refused or reset, or a timeout.
    Network,
}

impl Outcome {
    /// Whether another try could succeed.
    pub fn retryable(&self) -> bool {
        match self {
            Outcome::Success => false,
            Outcome::Status { code, .. } => matches!(code, 429 | 502 | 503 | 504),
            Outcome::Network => true,
        }
    }
}

/// Full jitter's random numbers: SplitMix64 seeded from the clock (nothing here needs more).
#[derive(Clone, Debug)]
pub struct Jitter(u64);

impl Jitter {
    /// Seeded from the time now.
    pub fn from_clock() -> Jitter {
        Jitter(SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64))
    }

    /// A uniform number in 0..1.
    pub fn unit(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// What an HTTP answer (or its absence) was, for the policy.
pub fn outcome(status: Option<u16>, retry_after: Option<&str>) -> Outcome {
    match status {
        Some(code) if (200..300).contains(&code) => Outcome::Success,
        Some(code) => {
            Outcome::Status { code, retry_after: retry_after.and_then(|v| parse_retry_after(v, SystemTime::now())) }
        }
        None => Outcome::Network,
    }
}

/// Reads a `Retry-After` value: delta-seconds or an HTTP date (relative to `now`).
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

impl RetryPolicy {
    /// The wait before try `attempt + 1` (`attempt` tries done, from 1), given what the last
    /// try ended with, the time since the first try, and a uniform random number in 0..1.
    /// None: give up (not retryable, out of attempts, or out of time).
    pub fn next_wait(&self, attempt: u32, last: &Outcome, elapsed: Duration, unit: f64) -> Option<Duration> {
        if !last.retryable() || attempt >= self.max_attempts {
            return None;
        }
        let exp = self.base.saturating_mul(1u32.checked_shl(attempt - 1).unwrap_or(u32::MAX)).min(self.cap);
        let jittered = exp.mul_f64(unit.clamp(0.0, 1.0));
        let wait = match last {
            Outcome::Status { retry_after: Some(floor), .. } => jittered.max(*floor),
            _ => jittered,
        };
        (elapsed + wait <= self.total).then_some(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn only_what_can_succeed_again_is_retried() {
        let p = RetryPolicy::default();
        for code in [429, 502, 503, 504] {
            assert!(p.next_wait(1, &Outcome::Status { code, retry_after: None }, Duration::ZERO, 0.5).is_some());
        }
        for code in [400, 401, 404, 413, 500] {
            assert_eq!(p.next_wait(1, &Outcome::Status { code, retry_after: None }, Duration::ZERO, 0.5), None);
        }
        assert!(p.next_wait(1, &Outcome::Network, Duration::ZERO, 0.5).is_some());
        assert_eq!(p.next_wait(1, &Outcome::Success, Duration::ZERO, 0.5), None);
    }

    #[test]
    fn waits_are_full_jitter_under_a_doubling_capped_bound() {
        let p = RetryPolicy { max_attempts: 10, base: MS(100), cap: MS(1000), total: Duration::from_secs(3600) };
        let bound = |attempt| p.next_wait(attempt, &Outcome::Network, Duration::ZERO, 1.0).unwrap();
        assert_eq!(
            [bound(1), bound(2), bound(3), bound(4), bound(5), bound(9)],
            [MS(100), MS(200), MS(400), MS(800), MS(1000), MS(1000)]
        );
        assert_eq!(p.next_wait(3, &Outcome::Network, Duration::ZERO, 0.0), Some(Duration::ZERO));
        assert_eq!(p.next_wait(3, &Outcome::Network, Duration::ZERO, 0.25), Some(MS(100)));
    }

    #[test]
    fn retry_after_is_a_floor_and_attempts_and_time_are_bounded() {
        let p = RetryPolicy { max_attempts: 3, base: MS(100), cap: MS(1000), total: Duration::from_secs(10) };
        let asked = Outcome::Status { code: 429, retry_after: Some(Duration::from_secs(2)) };
        assert_eq!(p.next_wait(1, &asked, Duration::ZERO, 0.9), Some(Duration::from_secs(2)));
        assert_eq!(p.next_wait(3, &asked, Duration::ZERO, 0.9), None, "out of attempts");
        assert_eq!(p.next_wait(1, &asked, Duration::from_secs(9), 0.9), None, "the wait would end past the total");
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        assert_eq!(parse_retry_after(&date, now), Some(Duration::from_secs(30)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(30));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
