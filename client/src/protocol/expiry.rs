//! The exptime a copy of an item is written with, so that the copy expires when the original does.
//!
//! A copy (replica copy after a conditional write, read-through, migration, re-warm, backfill)
//! learns the item's remaining TTL from `mg ... t`, but cannot send it back as is: memcached reads
//! an exptime over 30 days ([`REALTIME_MAXDELTA`]) as a Unix time, so a remaining TTL of 60 days
//! sent as `T5184000` lands in 1970 and the copy is dead on arrival; and `T0` means "never
//! expires", so an item in its last second would come back immortal. Every copy path goes
//! through [`copy_exptime`].

use std::time::{SystemTime, UNIX_EPOCH};

use super::REALTIME_MAXDELTA;

/// The exptime that reproduces a remaining TTL of `remaining` seconds (`None`: never expires),
/// as seen at Unix time `now`:
///
/// - never expires → `0`;
/// - 1 ..= 30 days → the same number of seconds, relative;
/// - more than 30 days → the absolute Unix time `now + remaining`;
/// - 0 or less (expiring this very second) → `-1`, which memcached stores as already expired
///   (never `0`, which would make the copy immortal).
pub fn copy_exptime_at(remaining: Option<i64>, now: i64) -> i64 {
    match remaining {
        None => 0,
        Some(r) if r <= 0 => -1,
        Some(r) if r <= REALTIME_MAXDELTA => r,
        Some(r) => now.saturating_add(r),
    }
}

/// [`copy_exptime_at`] at the current wall-clock time. The node converts an absolute exptime
/// with its own clock, so a clock skew between router and node shifts such an expiry by the
/// skew, as it would for a client that sent the absolute time itself.
pub fn copy_exptime(remaining: Option<i64>) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    copy_exptime_at(remaining, now)
}

/// The remaining TTL in a meta reply's `t` token: `None` for `-1` ("never expires") or a token
/// that is not a number (treated as never expiring, as the item was stored).
pub fn remaining_ttl(token: Option<&[u8]>) -> Option<i64> {
    let t = token?;
    match t {
        b"-1" => None,
        _ => super::number::parse_u64(t).map(|n| n.min(i64::MAX as u64) as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    #[test]
    fn never_expiring_stays_never_expiring() {
        assert_eq!(copy_exptime_at(None, NOW), 0);
        assert_eq!(remaining_ttl(Some(b"-1")), None);
        assert_eq!(remaining_ttl(None), None);
    }

    #[test]
    fn up_to_thirty_days_is_relative() {
        assert_eq!(copy_exptime_at(Some(1), NOW), 1);
        assert_eq!(copy_exptime_at(Some(3600), NOW), 3600);
        assert_eq!(
            copy_exptime_at(Some(REALTIME_MAXDELTA), NOW),
            REALTIME_MAXDELTA
        );
    }

    #[test]
    fn beyond_thirty_days_is_absolute() {
        let sixty_days = 60 * 86_400;
        assert_eq!(copy_exptime_at(Some(sixty_days), NOW), NOW + sixty_days);
        assert_eq!(
            copy_exptime_at(Some(REALTIME_MAXDELTA + 1), NOW),
            NOW + REALTIME_MAXDELTA + 1
        );
    }

    #[test]
    fn expiring_this_second_is_never_immortal() {
        assert_eq!(copy_exptime_at(Some(0), NOW), -1);
        assert_eq!(remaining_ttl(Some(b"0")), Some(0));
        assert_ne!(copy_exptime_at(remaining_ttl(Some(b"0")), NOW), 0);
    }
}
