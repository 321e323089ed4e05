//! The listener's heartbeat, as decisions without IO: while subscribed, the listener publishes
//! a probe every `every` (through the command connection, not the subscription) and must hear
//! one of its own probes back within `deaf_after`, or the subscription is deaf (a connection
//! that stays open and delivers nothing, as behind a proxy that black-holes it after a failover).
//!
//! A probe is `id (u64 LE) | 0u32 | 2 | sequence number (u64 LE)`: an invalidation message
//! with an empty namespace and the tag 2, which every listener's parser skips (invalidations
//! carry tag 1 or 0), so processes that do not probe ignore the probes of those that do.

use std::time::Duration;

use tokio::time::Instant;

use super::BackendError;

/// How often the listener probes its subscription, and how long it may go without hearing a
/// probe back before it resubscribes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Heartbeat {
    pub(super) every: Duration,
    pub(super) deaf_after: Duration,
}

impl Default for Heartbeat {
    /// A probe every second; deaf after three seconds without hearing one.
    fn default() -> Self {
        Self {
            every: Duration::from_secs(1),
            deaf_after: Duration::from_secs(3),
        }
    }
}

impl Heartbeat {
    /// A heartbeat that probes every `every` and declares the subscription deaf after
    /// `deaf_after` without hearing a probe: both longer than zero, and `deaf_after` longer than
    /// `every` (else the subscription would be deaf between two probes).
    pub(super) fn new(every: Duration, deaf_after: Duration) -> Result<Self, BackendError> {
        if every.is_zero() {
            return Err(BackendError::Setting(
                "the heartbeat interval must be longer than zero".into(),
            ));
        }
        if deaf_after <= every {
            return Err(BackendError::Setting(format!(
                "the heartbeat's deaf-after time ({deaf_after:?}) must be longer than its \
                 interval ({every:?})"
            )));
        }
        Ok(Self { every, deaf_after })
    }
}

/// The tag byte of a probe (invalidations use 1 and 0).
const PROBE: u8 = 2;

/// The probe numbered `seq` of the listener `id`.
pub(super) fn probe(id: u64, seq: u64) -> Vec<u8> {
    let mut msg = Vec::with_capacity(21);
    msg.extend_from_slice(&id.to_le_bytes());
    msg.extend_from_slice(&0u32.to_le_bytes());
    msg.push(PROBE);
    msg.extend_from_slice(&seq.to_le_bytes());
    msg
}

/// Whether `rest`, what follows the id of a message, is a probe.
pub(super) fn is_probe(rest: &[u8]) -> bool {
    matches!(rest, [0, 0, 0, 0, PROBE, ..])
}

/// What the listener does next.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Beat {
    /// Publish the probe numbered so.
    Probe(u64),
    /// No probe was heard for `deaf_after`: drop the subscription.
    Deaf,
    /// Nothing until [`Pulse::wake`] (or a message).
    Wait,
}

/// One subscription's heartbeat.
#[derive(Debug)]
pub(super) struct Pulse {
    heartbeat: Heartbeat,
    /// When the next probe is due.
    next_probe: Instant,
    /// When the subscription is deaf unless a probe is heard first.
    deaf_at: Instant,
    /// The next probe's number.
    seq: u64,
    /// A probe was heard on this subscription.
    proven: bool,
}

impl Pulse {
    /// The heartbeat of a subscription confirmed at `now`: the first probe is due at once.
    pub(super) fn start(heartbeat: Heartbeat, now: Instant) -> Self {
        Self {
            heartbeat,
            next_probe: now,
            deaf_at: now + heartbeat.deaf_after,
            seq: 0,
            proven: false,
        }
    }

    /// What to do at `now`.
    pub(super) fn beat(&mut self, now: Instant) -> Beat {
        if now >= self.deaf_at {
            Beat::Deaf
        } else if now >= self.next_probe {
            // From now, not from when it was due: a late wake-up sends one probe, not a burst.
            self.next_probe = now + self.heartbeat.every;
            self.seq += 1;
            Beat::Probe(self.seq)
        } else {
            Beat::Wait
        }
    }

    /// One of this listener's probes was heard at `now`.
    pub(super) fn heard(&mut self, now: Instant) {
        self.deaf_at = now + self.heartbeat.deaf_after;
        self.proven = true;
    }

    /// Whether a probe was heard on this subscription (it delivers).
    pub(super) fn proven(&self) -> bool {
        self.proven
    }

    /// When [`beat`](Self::beat) has something to do, unless a message comes first.
    pub(super) fn wake(&self) -> Instant {
        self.next_probe.min(self.deaf_at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    fn pulse(t0: Instant) -> Pulse {
        Pulse::start(Heartbeat::new(100 * MS, 300 * MS).unwrap(), t0)
    }

    #[test]
    fn probes_every_interval_and_is_deaf_without_an_answer() {
        let t0 = Instant::now();
        let mut p = pulse(t0);
        assert_eq!(p.beat(t0), Beat::Probe(1));
        assert_eq!(p.beat(t0 + 50 * MS), Beat::Wait);
        assert_eq!(p.wake(), t0 + 100 * MS);
        assert_eq!(p.beat(t0 + 100 * MS), Beat::Probe(2));
        // A late wake-up: one probe, and the next one an interval later.
        assert_eq!(p.beat(t0 + 250 * MS), Beat::Probe(3));
        assert_eq!(p.beat(t0 + 260 * MS), Beat::Wait);
        assert_eq!(p.wake(), t0 + 300 * MS);
        assert!(!p.proven());
        assert_eq!(p.beat(t0 + 300 * MS), Beat::Deaf);
    }

    #[test]
    fn hearing_a_probe_moves_the_deadline() {
        let t0 = Instant::now();
        let mut p = pulse(t0);
        assert_eq!(p.beat(t0), Beat::Probe(1));
        p.heard(t0 + 250 * MS);
        assert!(p.proven());
        assert_eq!(p.beat(t0 + 300 * MS), Beat::Probe(2));
        assert_eq!(p.beat(t0 + 549 * MS), Beat::Probe(3));
        assert_eq!(p.wake(), t0 + 550 * MS);
        assert_eq!(p.beat(t0 + 550 * MS), Beat::Deaf);
    }

    #[test]
    fn settings_are_validated() {
        assert!(Heartbeat::new(Duration::ZERO, MS).is_err());
        assert!(Heartbeat::new(MS, MS).is_err());
        let err = Heartbeat::new(2 * MS, MS).unwrap_err();
        assert!(
            err.to_string().contains("longer than its interval"),
            "{err}"
        );
        assert_eq!(
            Heartbeat::new(Duration::from_secs(1), Duration::from_secs(3)).unwrap(),
            Heartbeat::default()
        );
    }

    #[test]
    fn a_probe_is_skipped_by_an_invalidation_parser() {
        let msg = probe(7, 42);
        let (id, rest) = msg.split_first_chunk::<8>().unwrap();
        assert_eq!(u64::from_le_bytes(*id), 7);
        assert!(is_probe(rest));
        // What the parser of invalidations reads: an empty namespace, then a tag that is
        // neither 1 (a key) nor 0 (everything).
        let (len, rest) = rest.split_first_chunk::<4>().unwrap();
        assert_eq!(u32::from_le_bytes(*len), 0);
        assert!(!matches!(rest.first(), Some(0 | 1)));
        // An invalidation of a namespace is never a probe.
        assert!(!is_probe(&[1, 0, 0, 0, b'n', 0]));
        assert!(!is_probe(&[0, 0, 0, 0, 0]));
    }
}
