//! Sync rounds: their numbers, which peers' head exchanges of each have ended, and when the
//! timer starts the next one.

use std::collections::{HashMap, HashSet};
use std::hash::Hash;
use std::time::Duration;

use weft_storage::NamespaceId;

/// How far rounds started by the timer stretch apart while nothing changes: each quiet
/// round doubles the wait, up to 2^4 = 16 timer periods (160 s at the default 10 s). Gossip
/// carries every write live, so the rounds only mend what it missed; and any sign of change
/// (gossip, a new peer, a peer's heads that differ) brings them back to every period.
pub const MAX_QUIET_DOUBLINGS: u32 = 4;

/// How far into each timer period of `period` a node whose peer id is `id_bytes` fires: a
/// fraction of the period drawn from the id. Two caught-up peers whose timers fire together
/// both start a round before either hears the other's, so neither skips its own
/// ([`super::Client::timer`]); nodes started together, as a fleet or a benchmark is, would
/// otherwise pay every idle round twice.
pub fn timer_phase(id_bytes: &[u8], period: Duration) -> Duration {
    let mut draw = [0; 4];
    draw.copy_from_slice(&blake3::hash(id_bytes).as_bytes()[..4]);
    period.mul_f64(f64::from(u32::from_le_bytes(draw)) / (f64::from(u32::MAX) + 1.0))
}

/// The rounds of one client.
#[derive(Debug)]
pub(super) struct Rounds<P> {
    /// The current round: one more at each start.
    current: u64,
    /// For each peer and namespace, the latest round whose head exchange has ended: answered
    /// in full, refused, or failed (then a later round tries again).
    exchanged: HashMap<(P, NamespaceId), u64>,
    /// Timer-started rounds in a row that found nothing new (up to [`MAX_QUIET_DOUBLINGS`]):
    /// the timer waits 2^quiet periods between rounds.
    quiet: u32,
    /// Timer periods since the last timer-started round.
    waited: u32,
    /// Whether anything changed since the last timer-started round.
    stirred: bool,
    /// Peers whose own round found them holding the same heads in a namespace, since this
    /// node's last timer period that was due.
    matched: HashSet<(P, NamespaceId)>,
}

impl<P: Clone + Eq + Hash> Rounds<P> {
    pub(super) fn new() -> Self {
        Rounds {
            current: 0,
            exchanged: HashMap::new(),
            quiet: 0,
            waited: 0,
            stirred: true,
            matched: HashSet::new(),
        }
    }

    pub(super) fn current(&self) -> u64 {
        self.current
    }

    /// Starts a round; returns its number.
    pub(super) fn start(&mut self) -> u64 {
        self.current += 1;
        self.current
    }

    /// One timer period has passed: whether a round is due. While rounds find nothing new,
    /// each waits twice as many periods as the last; after a change the next period is due.
    pub(super) fn due(&mut self) -> bool {
        self.waited += 1;
        if self.waited < 1 << self.quiet {
            return false;
        }
        self.waited = 0;
        self.quiet = if self.stirred {
            0
        } else {
            (self.quiet + 1).min(MAX_QUIET_DOUBLINGS)
        };
        self.stirred = false;
        true
    }

    /// `peer` asked with a digest of the same heads in `ns`.
    pub(super) fn matched(&mut self, peer: P, ns: NamespaceId) {
        self.matched.insert((peer, ns));
    }

    /// Whether every one of `peers` showed the same heads in every one of `namespaces` since
    /// the last due period: a round now would find what theirs found. Starts the count over.
    pub(super) fn all_matched(&mut self, peers: &[P], namespaces: &[NamespaceId]) -> bool {
        let all = !peers.is_empty()
            && peers.iter().all(|peer| {
                namespaces
                    .iter()
                    .all(|ns| self.matched.contains(&(peer.clone(), *ns)))
            });
        self.matched.clear();
        all
    }

    /// Something changed: the timer's next period starts a round.
    pub(super) fn stir(&mut self) {
        self.stirred = true;
        self.quiet = 0;
    }

    /// The exchange of `ns` heads with `peer` for `round` has ended.
    pub(super) fn ended(&mut self, peer: P, ns: NamespaceId, round: u64) {
        let ended = self.exchanged.entry((peer, ns)).or_insert(0);
        *ended = (*ended).max(round);
    }

    /// `peer` went away: its exchanges are forgotten.
    pub(super) fn forget(&mut self, peer: &P) {
        self.exchanged.retain(|(other, _), _| other != peer);
    }

    /// The latest round whose head exchanges have all ended with every one of `peers` in
    /// every one of `namespaces`; zero with no peers.
    pub(super) fn exchanged<'a>(
        &self,
        peers: impl IntoIterator<Item = &'a P>,
        namespaces: &[NamespaceId],
    ) -> u64
    where
        P: 'a,
    {
        let mut least = None;
        for peer in peers {
            for ns in namespaces {
                let round = self
                    .exchanged
                    .get(&(peer.clone(), *ns))
                    .copied()
                    .unwrap_or(0);
                least = Some(least.map_or(round, |l: u64| l.min(round)));
            }
        }
        least.unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peers_fire_at_their_own_points_of_the_period() {
        let period = Duration::from_secs(10);
        let phases: Vec<Duration> = (0u8..16).map(|id| timer_phase(&[id; 38], period)).collect();
        assert!(phases.iter().all(|phase| *phase < period));
        assert_eq!(
            phases[3],
            timer_phase(&[3; 38], period),
            "one id, one phase"
        );
        let earliest = phases.iter().min().copied().unwrap_or_default();
        let latest = phases.iter().max().copied().unwrap_or_default();
        let spread = latest - earliest;
        assert!(
            spread > period / 2,
            "16 ids spread over {spread:?} of {period:?}"
        );
    }
}
