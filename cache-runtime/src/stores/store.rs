//! The L2 store interface: a small async trait that users can implement.
//!
//! A store keeps bytes (an [`Entry`](crate::Entry) as JSON) under storage keys
//! (`group:name:key.json`). It never decides freshness: that is the runtime's job. Errors
//! are returned, never panicked; the runtime logs and counts them and never fails a call
//! because of one.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::Error;

/// The future a [`Store`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, Error>> + Send + 'a>>;

/// A key-value store for entries (L2). Implement it to bring your own backend; check your
/// implementation with [`conformance::check`].
pub trait Store: Send + Sync + 'static {
    /// A short name for logs (`"fs"`, `"redis"`).
    fn name(&self) -> &str;

    /// The bytes under `key`, if any (and not past their TTL).
    fn get<'a>(&'a self, key: &'a str) -> StoreFuture<'a, Option<Vec<u8>>>;

    /// The bytes under each of `keys`, in order. The default asks one key at a time;
    /// stores with a batch read (Redis `MGET`) should override it.
    fn get_many<'a>(&'a self, keys: &'a [String]) -> StoreFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(async move {
            let mut out = Vec::with_capacity(keys.len());
            for k in keys {
                out.push(self.get(k).await?);
            }
            Ok(out)
        })
    }

    /// Stores `value` under `key`, replacing what was there; `ttl`: drop it after this long
    /// (`None`: keep it until deleted or evicted).
    fn set<'a>(&'a self, key: &'a str, value: Vec<u8>, ttl: Option<Duration>) -> StoreFuture<'a, ()>;

    /// Deletes `key`; returns whether it was there.
    fn delete<'a>(&'a self, key: &'a str) -> StoreFuture<'a, bool>;

    /// Deletes every key that starts with `prefix` (`""`: everything of this store);
    /// returns how many.
    fn delete_prefix<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, u64>;

    /// Every key that starts with `prefix`, in any order.
    fn keys<'a>(&'a self, prefix: &'a str) -> StoreFuture<'a, Vec<String>>;

    /// Raises the stamp under `key` (a `u64` stored as decimal text) to at least `stamp`,
    /// never lowering it, keeps it for `ttl` from now, and returns the stamp now stored.
    /// The runtime records invalidations this way: concurrent raises of one key must give
    /// the largest of their stamps, whatever their order.
    ///
    /// The default reads, then writes: atomic only when nothing else raises the key at the
    /// same moment. Stores shared between instances must override it with an atomic
    /// operation (the Redis store runs a script, the memory store updates under its lock).
    fn raise<'a>(&'a self, key: &'a str, stamp: u64, ttl: Option<Duration>) -> StoreFuture<'a, u64> {
        Box::pin(async move {
            let current = self.get(key).await?.as_deref().and_then(parse_stamp).unwrap_or(0);
            if current >= stamp {
                return Ok(current);
            }
            self.set(key, stamp.to_string().into_bytes(), ttl).await?;
            Ok(stamp)
        })
    }

    /// Replaces the bytes under `key`, keeping the time it has left to live; returns
    /// whether there was a value to replace (nothing is written otherwise). Used to mark
    /// an entry stale without changing how long the store keeps it.
    ///
    /// The default returns an error (a store cannot tell its TTLs through this trait);
    /// the runtime then deletes the entry instead, which is safe but loses the stale copy.
    fn replace<'a>(&'a self, key: &'a str, value: Vec<u8>) -> StoreFuture<'a, bool> {
        let _ = (key, value);
        Box::pin(async move {
            Err(Error::Store(format!("the {} store cannot replace a value keeping its TTL", self.name()).into()))
        })
    }
}

/// A stamp as stored by [`Store::raise`]: decimal text; anything else is no stamp.
pub fn parse_stamp(bytes: &[u8]) -> Option<u64> {
    std::str::from_utf8(bytes).ok()?.trim().parse().ok()
}

/// A conformance suite that every store must pass: the crate's stores run it in their
/// tests, and so can yours.
///
/// ```ignore
/// #[tokio::test]
/// async fn my_store_conforms() {
///     larder::stores::conformance::check(&MyStore::connect().await).await;
/// }
/// ```
pub mod conformance {
    use super::Store;
    use std::time::Duration;

    /// Runs every rule against `store`, which must start empty (or hold no key under
    /// `conformance:`); panics with the rule that failed. Takes about a second (TTL rule).
    pub async fn check<S: Store + ?Sized>(store: &S) {
        let p = "conformance:";
        let k = |s: &str| format!("{p}{s}");

        // get of a missing key
        assert_eq!(store.get(&k("missing.json")).await.expect("get"), None, "a missing key is None");

        // set then get returns the same bytes, binary-safe
        let bytes: Vec<u8> = (0..=255u8).collect();
        store.set(&k("a.json"), bytes.clone(), None).await.expect("set");
        assert_eq!(store.get(&k("a.json")).await.expect("get"), Some(bytes), "set then get gives the same bytes");

        // set replaces
        store.set(&k("a.json"), b"second".to_vec(), None).await.expect("set");
        assert_eq!(store.get(&k("a.json")).await.expect("get").as_deref(), Some(&b"second"[..]), "set replaces");

        // keys with colons are distinct keys, and nested prefixes work
        store.set(&k("g:n:x.json"), b"1".to_vec(), None).await.expect("set");
        store.set(&k("g:n:y:z.json"), b"2".to_vec(), None).await.expect("set");
        store.set(&k("g:m:x.json"), b"3".to_vec(), None).await.expect("set");
        let mut keys = store.keys(&k("g:n:")).await.expect("keys");
        keys.sort();
        assert_eq!(keys, vec![k("g:n:x.json"), k("g:n:y:z.json")], "keys by prefix");

        // get_many keeps the order and reports missing keys
        let many = store.get_many(&[k("g:n:x.json"), k("nope.json"), k("g:m:x.json")]).await.expect("get_many");
        assert_eq!(many, vec![Some(b"1".to_vec()), None, Some(b"3".to_vec())], "get_many in order");

        // delete
        assert!(store.delete(&k("g:m:x.json")).await.expect("delete"), "delete of a present key is true");
        assert!(!store.delete(&k("g:m:x.json")).await.expect("delete"), "delete of a missing key is false");
        assert_eq!(store.get(&k("g:m:x.json")).await.expect("get"), None, "deleted");

        // delete by prefix only touches the prefix
        assert_eq!(store.delete_prefix(&k("g:n:")).await.expect("delete_prefix"), 2, "delete_prefix counts");
        assert!(store.keys(&k("g:")).await.expect("keys").is_empty(), "delete_prefix deletes");
        assert!(store.get(&k("a.json")).await.expect("get").is_some(), "delete_prefix leaves other keys");

        // stamps only move forward
        assert_eq!(store.raise(&k("stamp.json"), 5, None).await.expect("raise"), 5, "a first raise stores its stamp");
        assert_eq!(store.raise(&k("stamp.json"), 3, None).await.expect("raise"), 5, "a lower stamp does not lower it");
        assert_eq!(store.raise(&k("stamp.json"), 9, None).await.expect("raise"), 9, "a higher stamp raises it");

        // replace keeps the TTL, and writes nothing for a missing key (when supported)
        store.set(&k("keep.json"), b"old".to_vec(), Some(Duration::from_millis(600))).await.expect("set");
        if let Ok(replaced) = store.replace(&k("keep.json"), b"new".to_vec()).await {
            assert!(replaced, "replace of a present key is true");
            assert_eq!(store.get(&k("keep.json")).await.expect("get").as_deref(), Some(&b"new"[..]), "replaced");
            assert!(!store.replace(&k("absent.json"), b"x".to_vec()).await.expect("replace"), "nothing to replace");
            assert_eq!(store.get(&k("absent.json")).await.expect("get"), None, "replace creates nothing");
        }

        // TTL
        store.set(&k("ttl.json"), b"t".to_vec(), Some(Duration::from_millis(300))).await.expect("set");
        assert!(store.get(&k("ttl.json")).await.expect("get").is_some(), "alive before its TTL");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        assert_eq!(store.get(&k("ttl.json")).await.expect("get"), None, "gone after its TTL");
        assert_eq!(store.get(&k("keep.json")).await.expect("get"), None, "a replaced value keeps its TTL");

        // clean up
        store.delete_prefix(p).await.expect("delete_prefix");
        assert!(store.keys(p).await.expect("keys").is_empty());
    }
}
