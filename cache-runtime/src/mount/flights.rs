//! Single-flight: one run per key, however many callers.
//!
//! The first caller of a cold key becomes the leader and runs the body in its own task;
//! everybody else waits on a `watch` channel. No lock is held while the body runs, so
//! different keys never wait on each other and a body may call other cached functions.
//! If the leader is dropped before it finishes, its sender goes away, the followers wake
//! up and one of them leads a new run. If the body panics, the leader publishes the panic
//! before unwinding, so the followers panic too instead of running the body again.

use std::any::Any;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use parking_lot::Mutex;

use crate::key::storage_key::IdMap;
use crate::mount::fences::Ticket;
use tokio::sync::watch;

/// What a finished run leaves for its followers.
pub(crate) enum Published {
    /// The value (a `V`).
    Value(Box<dyn Any + Send + Sync>),
    /// The error, if it could be shared (an `E: Clone`).
    Error(Option<Box<dyn Any + Send + Sync>>),
    /// The body panicked.
    Panicked,
}

/// What a follower's channel holds: nothing yet, or the outcome.
pub(crate) type State = Option<Arc<Published>>;

pub(crate) struct Flight {
    key: Box<str>,
    tags: Box<[Box<str>]>,
    tx: watch::Sender<State>,
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
    Follow(watch::Receiver<State>),
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
    pub fn join(self: &Arc<Self>, id: u128, key: &str, tags: &[Box<str>], ticket: Ticket) -> Join {
        let mut map = self.shard(id).lock();
        if let Some(flight) = map.get(&id) {
            return Join::Follow(flight.tx.subscribe());
        }
        let (tx, _rx) = watch::channel(None);
        let flight =
            Arc::new(Flight { key: key.into(), tags: tags.into(), tx, cancelled: AtomicBool::new(false), ticket });
        map.insert(id, Arc::clone(&flight));
        Join::Lead(Leader { flights: Arc::clone(self), id, flight, done: false })
    }

    /// Leads a new run of `id` only if none is in flight.
    pub fn try_lead(self: &Arc<Self>, id: u128, key: &str, tags: &[Box<str>], ticket: Ticket) -> Option<Leader> {
        match self.join(id, key, tags, ticket) {
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
                let hit = pred(&f.key, &f.tags, f.ticket.seq);
                if hit {
                    f.cancelled.store(true, Ordering::SeqCst);
                }
                !hit
            });
        }
    }
}

/// Waits for the run a follower joined.
pub(crate) async fn wait(mut rx: watch::Receiver<State>) -> Awaited {
    match rx.wait_for(|s| s.is_some()).await {
        Ok(state) => match state.as_ref() {
            Some(p) => Awaited::Done(Arc::clone(p)),
            None => Awaited::Abandoned,
        },
        Err(_) => Awaited::Abandoned,
    }
}

/// The right (and duty) to run the body of one key. Dropping it unfinished frees the key.
pub(crate) struct Leader {
    flights: Arc<Flights>,
    id: u128,
    flight: Arc<Flight>,
    done: bool,
}

impl Leader {
    /// A receiver for the outcome of this run.
    pub fn subscribe(&self) -> watch::Receiver<State> {
        self.flight.tx.subscribe()
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
    /// the count of receivers read after that is final.
    pub fn publish(mut self, outcome: impl FnOnce() -> Published) {
        self.done = true;
        self.flights.remove_if_same(self.id, &self.flight);
        if self.flight.tx.receiver_count() > 0 {
            self.flight.tx.send_replace(Some(Arc::new(outcome())));
        }
    }
}

impl Drop for Leader {
    fn drop(&mut self) {
        if !self.done {
            // Unfinished: free the key; the sender goes with the last `Arc<Flight>`, and
            // followers see the channel close and take over.
            self.flights.remove_if_same(self.id, &self.flight);
        }
    }
}
