//! The bus between instances (feature `redis`): a connection to Redis pub/sub on one channel.
//!
//! When an instance changes what other instances may hold in their memory tier (L1), it
//! publishes a [`BusMessage`]: which keys were set, deleted or expired, which prefix was
//! cleared, which tag was invalidated or expired. Messages carry keys, never values. Each
//! instance subscribes with [`Bus::connect`] and receives [`BusEvent`]s: the other instances'
//! messages (its own are filtered out by `origin`), and [`BusEvent::Reconnected`] after its
//! subscription was lost and re-established, since it cannot know what it missed meanwhile
//! (the runtime then expires its whole L1).
//!
//! The messages' format is in `wire.rs`; how a runtime publishes on the bus and applies
//! what it hears is in `link.rs` and `apply.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use ::redis::aio::{ConnectionManager, PubSubSink, PubSubStream};
use ::redis::{Client, Value, cmd};
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot};

use crate::bus::wire::BusMessage;
use crate::error::Error;
use crate::stores::redis::{DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, manager_config, redact};

/// What a [`Bus`]'s receiver gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BusEvent {
    /// A message from another instance.
    Message(BusMessage),
    /// The subscription was lost and is back: messages may have been missed meanwhile.
    Reconnected,
}

/// Options of a [`Bus`]: timeouts, reconnect backoff, receiver capacity, health checks.
#[derive(Debug, Clone)]
#[must_use]
pub struct BusOptions {
    connect_timeout: Duration,
    response_timeout: Duration,
    max_backoff: Duration,
    capacity: usize,
    ping_interval: Duration,
}

impl Default for BusOptions {
    /// Connect timeout 1 s, response timeout 500 ms, reconnect backoff from 100 ms doubling
    /// up to 5 s, 1024 buffered events, a health `PING` every 5 s.
    fn default() -> Self {
        BusOptions {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            max_backoff: Duration::from_secs(5),
            capacity: 1024,
            ping_interval: Duration::from_secs(5),
        }
    }
}

impl BusOptions {
    /// How long to wait for a connection (publishing and subscribing).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long to wait for a reply (`PUBLISH`, `SUBSCRIBE`, health `PING`).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// The longest wait between two attempts to subscribe again (at least 100 ms).
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff.max(Duration::from_millis(100));
        self
    }

    /// How many events the receiver buffers (at least 1). When it is full, the subscriber
    /// waits; Redis then buffers, and may drop the subscription if the receiver stays
    /// behind, which ends in a [`BusEvent::Reconnected`].
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// How often the subscriber checks its connection with a `PING`, to notice a server
    /// that stopped answering without closing the connection.
    pub fn ping_interval(mut self, interval: Duration) -> Self {
        self.ping_interval = interval.max(Duration::from_millis(10));
        self
    }

    fn op_timeout(&self) -> Duration {
        self.connect_timeout.saturating_add(self.response_timeout)
    }
}

/// A connection to the bus: publishes this instance's messages; a background task receives
/// the others' (see the [module documentation](crate::bus)).
///
/// The background task re-subscribes by itself (with backoff) when the subscription is lost,
/// for example when `redis-server` restarts, and then sends [`BusEvent::Reconnected`]. It
/// stops when the last clone of the `Bus` is dropped, or when the receiver is dropped.
#[derive(Clone)]
pub struct Bus {
    inner: Arc<Connection>,
}

struct Connection {
    publisher: ConnectionManager,
    channel: String,
    origin: String,
    op_timeout: Duration,
    target: String,
    /// Dropped with the last `Bus`: tells the subscriber task to stop.
    _stop: oneshot::Sender<()>,
}

impl fmt::Debug for Bus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bus")
            .field("target", &self.inner.target)
            .field("channel", &self.inner.channel)
            .field("origin", &self.inner.origin)
            .finish()
    }
}

impl Bus {
    /// Connects to the Redis server at `url`, subscribes to `channel`, and returns the bus
    /// and the receiver of the other instances' events. `origin` names this instance: it
    /// must be unique among the instances (a host name plus a process id, or a random id).
    ///
    /// Errors: the URL is invalid, no Tokio runtime is running, or the server does not
    /// answer (connect plus subscribe) within the default timeouts.
    pub async fn connect(url: &str, channel: &str, origin: &str) -> Result<(Bus, mpsc::Receiver<BusEvent>), Error> {
        Bus::connect_with(url, channel, origin, BusOptions::default()).await
    }

    /// [`Bus::connect`] with options.
    ///
    /// Errors: those of [`Bus::connect`], with the given timeouts.
    pub async fn connect_with(
        url: &str,
        channel: &str,
        origin: &str,
        options: BusOptions,
    ) -> Result<(Bus, mpsc::Receiver<BusEvent>), Error> {
        let target = redact(url);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(Error::Bus(format!("bus ({target}): must be connected inside a Tokio runtime").into()));
        }
        let client = Client::open(url).map_err(|e| Error::bus(format!("bus ({target}): invalid URL"), e))?;
        let (sink, stream) = subscribe(&client, channel, &options)
            .await
            .map_err(|e| Error::Bus(format!("bus ({target}): cannot subscribe to {channel:?}: {e}").into()))?;
        let publisher = ConnectionManager::new_lazy_with_config(
            client.clone(),
            manager_config(options.connect_timeout, options.response_timeout),
        )
        .map_err(|e| Error::bus(format!("bus ({target})"), e))?;

        let (events, receiver) = mpsc::channel(options.capacity);
        let (stop_tx, stop_rx) = oneshot::channel();
        let subscriber = Subscriber {
            client,
            channel: channel.to_owned(),
            origin: origin.to_owned(),
            target: target.clone(),
            options: options.clone(),
            events,
            stop: stop_rx,
        };
        tokio::spawn(subscriber.run(sink, stream));

        let inner = Connection {
            publisher,
            channel: channel.to_owned(),
            origin: origin.to_owned(),
            op_timeout: options.op_timeout(),
            target,
            _stop: stop_tx,
        };
        Ok((Bus { inner: Arc::new(inner) }, receiver))
    }

    /// Publishes `message` with this bus's origin (whatever `message.origin` was), and
    /// returns how many subscribers received it (this instance's own included).
    ///
    /// Errors: the message can't be encoded, or the server does not take it within the
    /// connect plus response timeouts; nothing is retried. Never panics.
    pub async fn publish(&self, mut message: BusMessage) -> Result<u64, Error> {
        let inner = &*self.inner;
        message.origin.clone_from(&inner.origin);
        let json = message.to_json()?;
        let mut conn = inner.publisher.clone();
        let publish = cmd("PUBLISH").arg(&inner.channel).arg(json).to_owned();
        match tokio::time::timeout(inner.op_timeout, publish.query_async::<u64>(&mut conn)).await {
            Ok(Ok(receivers)) => Ok(receivers),
            Ok(Err(e)) => Err(Error::bus(format!("bus ({}): PUBLISH failed", inner.target), e)),
            Err(_) => Err(Error::Bus(
                format!(
                    "bus ({}): PUBLISH timed out after {} ms; is the server up?",
                    inner.target,
                    inner.op_timeout.as_millis()
                )
                .into(),
            )),
        }
    }

    /// The name of this instance on the bus.
    pub fn origin(&self) -> &str {
        &self.inner.origin
    }

    /// The pub/sub channel.
    pub fn channel(&self) -> &str {
        &self.inner.channel
    }
}

/// Opens a pub/sub connection and subscribes to `channel`, within the options' timeouts.
async fn subscribe(client: &Client, channel: &str, options: &BusOptions) -> Result<(PubSubSink, PubSubStream), String> {
    let attempt = async {
        let (mut sink, stream) = client.get_async_pubsub().await?.split();
        sink.subscribe(channel).await?;
        Ok::<_, ::redis::RedisError>((sink, stream))
    };
    match tokio::time::timeout(options.op_timeout(), attempt).await {
        Ok(Ok(pair)) => Ok(pair),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err(format!("no answer within {} ms", options.op_timeout().as_millis())),
    }
}

/// The background task that receives messages and keeps the subscription alive.
struct Subscriber {
    client: Client,
    channel: String,
    origin: String,
    target: String,
    options: BusOptions,
    events: mpsc::Sender<BusEvent>,
    stop: oneshot::Receiver<()>,
}

/// Why the subscriber stopped listening.
enum Ended {
    /// The `Bus` or the receiver was dropped.
    Stopped,
    /// The connection was lost (or stopped answering).
    Lost,
}

impl Subscriber {
    async fn run(mut self, mut sink: PubSubSink, mut stream: PubSubStream) {
        loop {
            if let Ended::Stopped = self.listen(&mut sink, &mut stream).await {
                return;
            }
            tracing::warn!(target: "larder", bus = %self.target, channel = %self.channel, "bus: subscription lost; subscribing again");
            match self.resubscribe().await {
                Some((new_sink, new_stream)) => (sink, stream) = (new_sink, new_stream),
                None => return,
            }
            tracing::info!(target: "larder", bus = %self.target, channel = %self.channel, "bus: subscribed again");
            if !self.deliver(BusEvent::Reconnected).await {
                return;
            }
        }
    }

    /// Receives messages until the connection is lost or the bus stops.
    async fn listen(&mut self, sink: &mut PubSubSink, stream: &mut PubSubStream) -> Ended {
        let mut ping = tokio::time::interval(self.options.ping_interval);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ping.tick().await; // the first tick is immediate
        loop {
            tokio::select! {
                _ = &mut self.stop => return Ended::Stopped,
                _ = self.events.closed() => return Ended::Stopped,
                msg = stream.next() => {
                    let Some(msg) = msg else { return Ended::Lost };
                    let message = match BusMessage::from_json(msg.get_payload_bytes()) {
                        Ok(message) => message,
                        Err(e) => {
                            tracing::warn!(target: "larder", bus = %self.target, error = %e, "bus: ignoring a message that is not a bus message");
                            continue;
                        }
                    };
                    if message.origin == self.origin {
                        continue;
                    }
                    if !self.deliver(BusEvent::Message(message)).await {
                        return Ended::Stopped;
                    }
                }
                _ = ping.tick() => {
                    let pong = tokio::time::timeout(self.options.response_timeout, sink.ping::<Value>()).await;
                    if !matches!(pong, Ok(Ok(_))) {
                        return Ended::Lost;
                    }
                }
            }
        }
    }

    /// Hands an event to the receiver, waiting while it is full; false when the bus stopped.
    async fn deliver(&mut self, event: BusEvent) -> bool {
        tokio::select! {
            _ = &mut self.stop => false,
            sent = self.events.send(event) => sent.is_ok(),
        }
    }

    /// Subscribes again, with exponential backoff, until it works or the bus stops.
    async fn resubscribe(&mut self) -> Option<(PubSubSink, PubSubStream)> {
        let mut backoff = Duration::from_millis(100);
        loop {
            tokio::select! {
                _ = &mut self.stop => return None,
                _ = self.events.closed() => return None,
                _ = tokio::time::sleep(backoff) => {}
            }
            match subscribe(&self.client, &self.channel, &self.options).await {
                Ok(pair) => return Some(pair),
                Err(e) => {
                    tracing::debug!(target: "larder", bus = %self.target, error = %e, "bus: cannot subscribe yet");
                    backoff = (backoff * 2).min(self.options.max_backoff);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::wire::BusOp;

    #[test]
    fn a_message_is_json_with_an_op_and_no_value() {
        let mut message =
            BusMessage::new("cache", BusOp::Delete { keys: vec!["functions:f:default.json".into()] }).at(7);
        message.origin = "web-1".into();
        let json: serde_json::Value = serde_json::from_str(&message.to_json().unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"origin": "web-1", "mount": "cache", "at": 7, "op": "delete", "keys": ["functions:f:default.json"]})
        );
        let ops = [
            (BusOp::Set { keys: vec!["k".into()] }, "set"),
            (BusOp::Expire { keys: vec!["k".into()] }, "expire"),
            (BusOp::Clear { prefix: "functions:".into() }, "clear"),
            (BusOp::InvalidateTag { tag: "t".into() }, "invalidate_tag"),
            (BusOp::ExpireTag { tag: "t".into() }, "expire_tag"),
        ];
        for (op, name) in ops {
            let message = BusMessage::new("cache", op);
            let json = message.to_json().unwrap();
            assert!(json.contains(&format!("\"op\":\"{name}\"")), "{json}");
            assert_eq!(BusMessage::from_json(json.as_bytes()).unwrap(), message);
        }
    }

    #[test]
    fn foreign_json_is_a_codec_error() {
        assert!(matches!(BusMessage::from_json(b"{\"op\":\"explode\",\"origin\":\"x\"}"), Err(Error::Codec(_))));
        assert!(matches!(BusMessage::from_json(b"not json"), Err(Error::Codec(_))));
    }
}
