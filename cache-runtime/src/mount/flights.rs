//! Single-flight: one run per key, however many callers.
//!
//! The first caller of a cold key becomes the leader and runs the body in its own task;
//! everybody else follows the flight: waits on its `Notify` for the outcome. No lock is
//! held while the body runs, so different keys never wait on each other and a body may
//! call other cached functions. If the leader is dropped before it finishes, the flight
//! is marked abandoned, the followers wake up and one of them leads a new run. If the body
//! panics, the leader publishes the panic before unwinding, so the followers panic too
//! instead of running the body again. A flight with no follower (most of them) makes no
//! outcome and wakes nobody.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;

use crate::key::storage_key::{IdMap, Key};
use crate::mount::fences::Ticket;
use tokio::sync::Notify;

/// What a finished run leaves for its followers.
pub(crate) enum Published {
    /// The value (a `V`).
    Value(Box<dyn Any + Send + Sync>),
    /// The error, if it could be shared (an `E: Clone`).
    Error(Option<Box<dyn Any + Send + Sync>>),
    /// The body panicked.
    Panicked,
}

/// Where a flight stands, for its followers.
enum State {
    Running,
    Done(Arc<Published>),
    /// The leader went away without an outcome.
    Abandoned,
}

pub(crate) struct Flight {
    /// The whole key (inline when short: no allocation of its own).
    key: Key,
    tags: Arc<[Box<str>]>,
    state: Mutex<State>,
    /// Wakes the followers when `state` leaves `Running`.
    settled: Notify,
    /// Followers that joined (counted under the shard's lock: final once the flight has
    /// left the map).
    followers: AtomicUsize,
    cancelled: AtomicBool,
    /// Taken when the run was joined: its entry's `seq` and `born`.
    ticket: Ticket,
}

#[repr(align(128))]
struct FlightShard(Mutex<IdMap<Arc<Flight>>>);

/// The runs in flight of one mount.
pub(crate) struct Flights {
    shards: Box<[FlightShard]>,
    mask: usize,
}

pub(crate) enum Join {
    Lead(Leader),
    Follow(Follower),
}

/// A caller waiting for a flight's outcome ([`wait`]).
pub(crate) struct Follower(Arc<Flight>);

impl Flight {
    fn follower(self: &Arc<Self>) -> Follower {
        self.followers.fetch_add(1, Ordering::Relaxed);
        Follower(Arc::clone(self))
    }

    fn settle(&self, state: State) {
        *self.state.lock() = state;
        self.settled.notify_waiters();
    }
}

/// The outcome a follower sees.
pub(crate) enum Awaited {
    Done(Arc<Published>),
    /// The leader went away without an outcome: try again.
    Abandoned,
}

impl Flights {
    pub fn new() -> Arc<Flights> {
        let n = (std::thread::available_parallelism().map(|n| n.get()).unwrap_or(4) * 8).next_power_of_two();
        Arc::new(Flights { shards: (0..n).map(|_| FlightShard(Mutex::new(IdMap::default()))).collect(), mask: n - 1 })
    }

    #[inline]
    fn shard(&self, id: u128) -> &Mutex<IdMap<Arc<Flight>>> {
        &self.shards[((id >> 64) as usize) & self.mask].0
    }

    /// Leads a new run of `id`, or follows the one in flight. `ticket` is the mount's
    /// ticket now: a new run's entry is stored with it.
    pub fn join(self: &Arc<Self>, key: &Key, tags: &Arc<[Box<str>]>, ticket: Ticket) -> Join {
        let id = key.id();
        let mut map = self.shard(id).lock();
        if let Some(flight) = map.get(&id) {
            return Join::Follow(flight.follower());
        }
        let flight = Arc::new(Flight {
            key: key.clone(),
            tags: Arc::clone(tags),
            state: Mutex::new(State::Running),
            settled: Notify::new(),
            followers: AtomicUsize::new(0),
            cancelled: AtomicBool::new(false),
            ticket,
        });
        map.insert(id, Arc::clone(&flight));
        Join::Lead(Leader { flights: Arc::clone(self), flight, done: false })
    }

    /// Leads a new run of `id` only if none is in flight.
    pub fn try_lead(self: &Arc<Self>, key: &Key, tags: &Arc<[Box<str>]>, ticket: Ticket) -> Option<Leader> {
        match self.join(key, tags, ticket) {
            Join::Lead(l) => Some(l),
            Join::Follow(_) => None,
        }
    }

    /// Whether a run of `id` is in flight.
    pub fn is_running(&self, id: u128) -> bool {
        self.shard(id).lock().contains_key(&id)
    }

    fn remove_if_same(&self, id: u128, flight: &Arc<Flight>) {
        let mut map = self.shard(id).lock();
        if map.get(&id).is_some_and(|f| Arc::ptr_eq(f, flight)) {
            map.remove(&id);
        }
    }

    /// Cancels the run of `id`: its result will not be stored, and the next caller starts
    /// a new run.
    pub fn cancel(&self, id: u128) {
        if let Some(f) = self.shard(id).lock().remove(&id) {
            f.cancelled.store(true, Ordering::SeqCst);
        }
    }

    /// Cancels every run for which `pred(key, tags, seq)` holds (`seq`: the sequence number
    /// the run was joined at, so that an event cancels only the runs that began before it).
    pub fn cancel_where(&self, pred: impl Fn(&str, &[Box<str>], u64) -> bool) {
        for shard in self.shards.iter() {
            shard.0.lock().retain(|_, f| {
                let hit = pred(f.key.as_str(), &f.tags, f.ticket.seq);
                if hit {
                    f.cancelled.store(true, Ordering::SeqCst);
                }
                !hit
            });
        }
    }
}

/// Waits for the run a follower joined.
pub(crate) async fn wait(follower: Follower) -> Awaited {
    let flight = follower.0;
    loop {
        // Registered before the state is read: a settle after the read still wakes it.
        let settled = flight.settled.notified();
        let mut settled = std::pin::pin!(settled);
        settled.as_mut().enable();
        match &*flight.state.lock() {
            State::Running => {}
            State::Done(p) => return Awaited::Done(Arc::clone(p)),
            State::Abandoned => return Awaited::Abandoned,
        }
        settled.await;
    }
}

/// The right (and duty) to run the body of one key. Dropping it unfinished frees the key.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    flight: Arc<Flight>,
    done: bool,
}

impl Leader {
    /// A follower of this very run (for a leader that waits for its own run).
    pub fn subscribe(&self) -> Follower {
        self.flight.follower()
    }

    /// The ticket the run was joined with.
    pub fn ticket(&self) -> Ticket {
        self.flight.ticket
    }

    /// Whether an invalidation arrived since the run started (its result must not be stored).
    pub fn cancelled(&self) -> bool {
        self.flight.cancelled.load(Ordering::SeqCst)
    }

    /// Frees the key and hands the outcome to the followers (made only if there are any:
    /// most runs have none). Once the flight is out of the map nobody can follow it, so
    /// the count of followers read after that is final.
    pub fn publish(mut self, outcome: impl FnOnce() -> Published) {
        self.done = true;
        self.flights.remove_if_same(self.flight.key.id(), &self.flight);
        if self.flight.followers.load(Ordering::Relaxed) > 0 {
            self.flight.settle(State::Done(Arc::new(outcome())));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.done {
            // Unfinished: free the key, and wake the followers to take over.
            self.flights.remove_if_same(self.flight.key.id(), &self.flight);
            if self.flight.followers.load(Ordering::Relaxed) > 0 {
                self.flight.settle(State::Abandoned);
            }
        }
    }
}
