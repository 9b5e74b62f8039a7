//! Who is let in: a client's token, compared in constant time
//! ([`same_secret`]), and who keeps a connection when a listener is full.
//!
//! The management server and the actors' HTTP servers both face peers that
//! open connections and then hold them without doing anything useful. A
//! fixed number of seats would let such a peer lock everyone else out, so
//! a full table makes room instead of refusing: it closes the *idle*
//! connection that has waited longest, taken from the peer holding the
//! most seats. A peer at its own limit makes room among its own seats. A
//! newcomer is refused only when every candidate is busy.
//!
//! What counts as idle is the caller's choice: a management connection is
//! idle until its `hello` is accepted; an HTTP connection is idle whenever
//! the actor is not working on one of its requests.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};

/// Where connections come from, for per-peer limits: an IPv4 address, or
/// the /64 prefix of an IPv6 address (one host usually holds a whole /64,
/// so counting single IPv6 addresses would let it take every seat).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PeerKey(IpAddr);

impl PeerKey {
    pub fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Self(IpAddr::V6(prefix.into()))
            }
            v4 => Self(v4),
        }
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V6(prefix) => write!(f, "{prefix}/64"),
            v4 => write!(f, "{v4}"),
        }
    }
}

/// Why a newcomer got no seat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Its peer holds `per_peer` seats and all of them are busy.
    Peer,
    /// The table holds `total` seats and all of them are busy.
    Total,
}

/// The seats of one listener.
pub(crate) struct Admission {
    total: usize,
    per_peer: usize,
    table: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    /// Hands out seat ids and idle ranks; both only grow.
    next: u64,
    seats: usize,
    peers: HashMap<PeerKey, HashMap<u64, Entry>>,
}

struct Entry {
    /// When the seat last became idle (a rank of `Table::next`, so the
    /// smallest is the longest idle).
    idle_since: u64,
    /// Busy marks held ([`Seat::busy`]); a busy seat is never taken.
    busy: u32,
    evicted: CancellationToken,
}

impl Table {
    fn tick(&mut self) -> u64 {
        self.next += 1;
        self.next
    }

    /// The longest-idle seat of `peer`, with how long it has been idle.
    fn longest_idle(&self, peer: &PeerKey) -> Option<(u64, u64)> {
        self.peers
            .get(peer)?
            .iter()
            .filter(|(_, entry)| entry.busy == 0)
            .map(|(&id, entry)| (entry.idle_since, id))
            .min()
    }

    fn evict(&mut self, peer: PeerKey, id: u64) {
        let seats = self.peers.get_mut(&peer).expect("the peer has the seat");
        let entry = seats.remove(&id).expect("the seat exists");
        if seats.is_empty() {
            self.peers.remove(&peer);
        }
        self.seats -= 1;
        entry.evicted.cancel();
    }

    /// Frees a seat for `newcomer` if the table or its peer is full.
    fn make_room(&mut self, newcomer: PeerKey, total: usize, per_peer: usize) -> Result<(), Full> {
        let own = self.peers.get(&newcomer).map_or(0, HashMap::len);
        if own >= per_peer {
            let (_, id) = self.longest_idle(&newcomer).ok_or(Full::Peer)?;
            self.evict(newcomer, id);
        } else if self.seats >= total {
            // The most crowded peer with an idle seat gives one up; among
            // equally crowded peers, the seat idle the longest goes.
            let victim = self
                .peers
                .iter()
                .filter_map(|(peer, seats)| {
                    let (since, id) = self.longest_idle(peer)?;
                    Some((seats.len(), std::cmp::Reverse(since), *peer, id))
                })
                .max_by_key(|&(crowd, since, _, _)| (crowd, since));
            let (_, _, peer, id) = victim.ok_or(Full::Total)?;
            self.evict(peer, id);
        }
        Ok(())
    }
}

impl Admission {
    /// A table of at most `total` seats and `per_peer` seats per peer
    /// (both at least 1).
    pub fn new(total: usize, per_peer: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_peer: per_peer.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        // The table stays consistent between statements; a panic elsewhere
        // must not close the door on everyone.
        self.table.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A seat for a connection from `peer`, closing an idle one if the
    /// table or the peer is full.
    pub fn admit(self: &Arc<Self>, peer: PeerKey) -> Result<Seat, Full> {
        let mut table = self.lock();
        table.make_room(peer, self.total, self.per_peer)?;
        let id = table.tick();
        let evicted = CancellationToken::new();
        let entry = Entry {
            idle_since: id,
            busy: 0,
            evicted: evicted.clone(),
        };
        table.peers.entry(peer).or_default().insert(id, entry);
        table.seats += 1;
        Ok(Seat(Arc::new(SeatInner {
            admission: self.clone(),
            peer,
            id,
            evicted,
        })))
    }

    /// Seats taken now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().seats
    }

    fn update(&self, peer: PeerKey, id: u64, change: impl FnOnce(&mut Entry, u64)) {
        let mut table = self.lock();
        let tick = table.tick();
        // An evicted seat has left the table already.
        if let Some(entry) = table.peers.get_mut(&peer).and_then(|s| s.get_mut(&id)) {
            change(entry, tick);
        }
    }
}

/// A connection's place in an [`Admission`] table, given up when the last
/// clone is dropped.
#[derive(Clone)]
pub(crate) struct Seat(Arc<SeatInner>);

struct SeatInner {
    admission: Arc<Admission>,
    peer: PeerKey,
    id: u64,
    evicted: CancellationToken,
}

impl Seat {
    /// Completes when the seat was taken to make room for a newcomer: the
    /// connection should close at once.
    pub fn evicted(&self) -> WaitForCancellationFuture<'_> {
        self.0.evicted.cancelled()
    }

    #[cfg(test)]
    pub fn is_evicted(&self) -> bool {
        self.0.evicted.is_cancelled()
    }

    /// Marks the seat busy until the mark is dropped; then it is idle
    /// again, and the most recently idle of all.
    pub fn busy(&self) -> Busy {
        let inner = &self.0;
        inner
            .admission
            .update(inner.peer, inner.id, |entry, _| entry.busy += 1);
        Busy(self.clone())
    }
}

impl Drop for SeatInner {
    fn drop(&mut self) {
        let mut table = self.admission.lock();
        let Some(seats) = table.peers.get_mut(&self.peer) else {
            return;
        };
        if seats.remove(&self.id).is_some() {
            if seats.is_empty() {
                table.peers.remove(&self.peer);
            }
            table.seats -= 1;
        }
    }
}

/// A busy mark on a [`Seat`] (see [`Seat::busy`]).
pub(crate) struct Busy(Seat);

impl Drop for Busy {
    fn drop(&mut self) {
        let inner = &(self.0).0;
        inner.admission.update(inner.peer, inner.id, |entry, tick| {
            entry.busy -= 1;
            entry.idle_since = tick;
        });
    }
}

/// Compares without stopping at the first difference, so the time taken
/// does not tell how much of a guess was right.
pub(crate) fn same_secret(given: &str, expected: &str) -> bool {
    let (given, expected) = (given.as_bytes(), expected.as_bytes());
    let mut diff = given.len() ^ expected.len();
    for (i, b) in expected.iter().enumerate() {
        diff |= usize::from(given.get(i).copied().unwrap_or(0) ^ b);
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(last: u8) -> PeerKey {
        PeerKey::of(IpAddr::from([127, 0, 0, last]))
    }

    #[test]
    fn a_full_peer_gives_up_its_own_longest_idle_seat() {
        let table = Admission::new(100, 2);
        let first = table.admit(peer(1)).unwrap();
        let second = table.admit(peer(1)).unwrap();
        let other = table.admit(peer(2)).unwrap();
        let third = table.admit(peer(1)).unwrap();
        assert!(first.is_evicted());
        assert!(!second.is_evicted() && !third.is_evicted() && !other.is_evicted());
        assert_eq!(table.len(), 3);
    }

    #[test]
    fn a_full_table_takes_from_the_most_crowded_peer() {
        let table = Admission::new(4, 8);
        let lone = table.admit(peer(1)).unwrap();
        let crowd: Vec<_> = (0..3).map(|_| table.admit(peer(2)).unwrap()).collect();
        let newcomer = table.admit(peer(3)).unwrap();
        assert!(crowd[0].is_evicted(), "the crowd's oldest seat goes");
        assert!(!lone.is_evicted() && !newcomer.is_evicted());
        assert!(!crowd[1].is_evicted() && !crowd[2].is_evicted());
    }

    #[test]
    fn busy_seats_stay_and_idle_again_counts_as_fresh() {
        let table = Admission::new(2, 2);
        let a = table.admit(peer(1)).unwrap();
        let b = table.admit(peer(1)).unwrap();
        let busy_a = a.busy();
        let busy_b = b.busy();
        assert_eq!(table.admit(peer(1)).err(), Some(Full::Peer));
        assert_eq!(table.admit(peer(2)).err(), Some(Full::Total));
        drop(busy_a);
        drop(busy_b);
        // `a` became idle first, so it has waited longest.
        let _c = table.admit(peer(2)).unwrap();
        assert!(a.is_evicted() && !b.is_evicted());
    }

    #[test]
    fn dropped_and_evicted_seats_free_their_place_once() {
        let table = Admission::new(1, 1);
        let a = table.admit(peer(1)).unwrap();
        let b = table.admit(peer(1)).unwrap();
        assert!(a.is_evicted());
        drop(a);
        assert_eq!(table.len(), 1);
        drop(b);
        assert_eq!(table.len(), 0);
    }

    #[test]
    fn ipv6_peers_are_counted_by_64_prefix() {
        let one: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let two: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(PeerKey::of(one), PeerKey::of(two));
        assert_ne!(PeerKey::of(one), PeerKey::of(other));
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        assert_eq!(PeerKey::of(mapped), peer(1));
        assert_eq!(PeerKey::of(one).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret("s3cret", "s3cret"));
        assert!(!same_secret("s3cre", "s3cret"));
        assert!(!same_secret("s3cretx", "s3cret"));
        assert!(!same_secret("", "s3cret"));
        assert!(!same_secret("S3cret", "s3cret"));
    }
}
