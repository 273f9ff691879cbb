//! The programmatic API (`larder::cache()`, `Runtime::cache`): the same algorithm as the
//! attribute, for code that cannot use it.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Runs, runtime};
use larder::{Error, Options};

async fn produce(runs: &Runs) -> Result<usize, Error> {
    Ok(runs.hit())
}

#[tokio::test]
async fn get_set_has_delete_pull_expire() {
    let (rt, clock) = runtime();
    let cache = rt.cache("cache");
    let opts = Options::new().max_age(Duration::from_secs(60));
    assert_eq!(cache.get::<String>("a").await, None);
    cache.set("a", "A".to_owned(), &opts).await;
    assert_eq!(cache.get::<String>("a").await.as_deref(), Some("A"));
    assert_eq!(cache.get::<u64>("a").await, None, "another type is not this entry");
    assert!(cache.has("a").await);
    clock.advance(Duration::from_secs(61));
    assert!(!cache.has("a").await, "past max_age");
    assert_eq!(cache.get::<String>("a").await, None);

    cache.set("b", 1u32, &opts).await;
    assert!(cache.expire("b").await);
    assert_eq!(cache.get::<u32>("b").await, None, "expired: not fresh");

    cache.set("c", 3u32, &opts).await;
    assert_eq!(cache.pull::<u32>("c").await, Some(3));
    assert!(!cache.has("c").await, "pull deletes");

    cache.set("d", 4u32, &opts).await;
    cache.set("e", 5u32, &opts).await;
    assert_eq!(cache.delete_many(&["d", "e", "nope"]).await, 2);
    assert!(cache.delete("b").await);
    assert!(!cache.delete("b").await);
}

#[tokio::test]
async fn get_or_set_runs_the_factory_once_and_never_caches_errors() {
    let (rt, _clock) = runtime();
    let cache = rt.cache("cache");
    let opts = Options::new().max_age(Duration::from_secs(60));
    let runs = Runs::new();
    for _ in 0..3 {
        let r = runs.clone();
        assert_eq!(cache.get_or_set("k", &opts, move || async move { produce(&r).await }).await.unwrap(), 1);
    }
    let failing: Result<usize, Error> =
        cache.get_or_set("bad", &opts, || async { Err(Error::Store("down".into())) }).await;
    assert!(failing.is_err());
    assert!(!cache.has("bad").await);
}

#[tokio::test]
async fn namespaces_are_cleared_together() {
    let (rt, _clock) = runtime();
    let root = rt.cache("cache");
    let users = root.namespace("users");
    let posts = root.namespace("posts");
    let opts = Options::new().max_age(Duration::from_secs(60));
    users.set("1", 1u8, &opts).await;
    users.namespace("admins").set("1", 2u8, &opts).await;
    posts.set("1", 3u8, &opts).await;
    assert_eq!(users.storage_key("1"), "users:1.json");
    assert_eq!(users.clear().await, 2, "a namespace and its sub-namespaces");
    assert_eq!(posts.get::<u8>("1").await, Some(3));
}

#[tokio::test]
async fn grace_answers_with_the_old_value_while_the_factory_fails_then_backs_off() {
    let (rt, clock) = runtime();
    let cache = rt.cache("cache");
    let opts = Options::new()
        .max_age(Duration::from_secs(10))
        .grace(Duration::from_secs(60))
        .grace_backoff(Duration::from_secs(5));
    let ok = cache.get_or_set("g", &opts, || async { Ok::<_, Error>(1u32) }).await;
    assert_eq!(ok.unwrap(), 1);
    clock.advance(Duration::from_secs(11)); // past max_age, inside grace
    let calls = Runs::new();
    let failing = |calls: Runs| {
        move || async move {
            calls.hit();
            Err::<u32, Error>(Error::Store("upstream down".into()))
        }
    };
    assert_eq!(cache.get_or_set("g", &opts, failing(calls.clone())).await.unwrap(), 1, "grace answer");
    assert_eq!(calls.get(), 1);
    // Within the backoff the factory is not called at all.
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get_or_set("g", &opts, failing(calls.clone())).await.unwrap(), 1);
    assert_eq!(calls.get(), 1, "backed off");
    // After the backoff it is tried again (and fails again: grace again).
    clock.advance(Duration::from_secs(2));
    assert_eq!(cache.get_or_set("g", &opts, failing(calls.clone())).await.unwrap(), 1);
    assert_eq!(calls.get(), 2);
    // Past max_age + grace the error comes through.
    clock.advance(Duration::from_secs(60));
    assert!(cache.get_or_set("g", &opts, failing(calls.clone())).await.is_err());
    assert_eq!(calls.get(), 3);
}

#[tokio::test]
async fn a_soft_timeout_answers_stale_and_the_late_result_is_stored() {
    let (rt, clock) = runtime();
    let cache = rt.cache("cache");
    let opts = Options::new()
        .max_age(Duration::from_secs(10))
        .grace(Duration::from_secs(60))
        .timeout(Duration::from_millis(20));
    cache.set("t", 1u32, &opts).await;
    clock.advance(Duration::from_secs(11));
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let slow = cache.get_or_set("t", &opts, move || async move {
        let _ = rx.await; // finishes only when the test says so
        Ok::<_, Error>(2u32)
    });
    assert_eq!(slow.await.unwrap(), 1, "answered with the stale value after `timeout`");
    tx.send(()).unwrap();
    common::until("the late result is stored", async || cache.get::<u32>("t").await == Some(2)).await;
}

#[tokio::test(start_paused = true)]
async fn a_hard_timeout_gives_up_with_error_timeout() {
    let (rt, _clock) = runtime();
    let cache = rt.cache("cache");
    let opts = Options::new().max_age(Duration::from_secs(10)).hard_timeout(Duration::from_millis(100));
    let r: Result<u32, Error> = cache
        .get_or_set("h", &opts, || async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Ok(1)
        })
        .await;
    assert_eq!(r, Err(Error::Timeout));
}

#[tokio::test]
async fn invalidate_tag_makes_misses_and_expire_tag_makes_stale() {
    let (rt, _clock) = runtime();
    rt.scope(async {
        let cache = rt.cache("cache");
        let tagged = Options::new().max_age(Duration::from_secs(60)).swr().tag("users").tag("user:1");
        cache.set("u1", 1u32, &tagged).await;
        cache.set("u2", 2u32, &Options::new().max_age(Duration::from_secs(60)).tag("users")).await;
        cache.set("other", 3u32, &Options::new().max_age(Duration::from_secs(60))).await;

        larder::expire_tag("user:1").await;
        assert_eq!(cache.get::<u32>("u1").await, None, "expired: not fresh");
        let stale: Result<u32, Error> = cache.get_or_set("u1", &tagged, || async { Ok(10) }).await;
        assert_eq!(stale.unwrap(), 1, "but still served stale under swr");

        larder::invalidate_tag("users").await;
        assert_eq!(cache.get::<u32>("u2").await, None);
        assert_eq!(cache.get::<u32>("other").await, Some(3), "untagged entries are untouched");
        let recomputed: Result<u32, Error> = cache
            .get_or_set("u2", &Options::new().max_age(Duration::from_secs(60)).tag("users"), || async { Ok(20) })
            .await;
        assert_eq!(recomputed.unwrap(), 20, "invalidated: a miss");
        assert_eq!(cache.get::<u32>("u2").await, Some(20), "and the new entry is valid");
    })
    .await;
}

#[tokio::test]
async fn a_tag_invalidation_cancels_the_runs_begun_before_it_only() {
    let (rt, _clock) = runtime();
    let cache = rt.cache("cache");
    let tagged = Options::new().max_age(Duration::from_secs(60)).tag("prices");
    let gate = common::Gate::new();
    let started = Arc::new(tokio::sync::Notify::new());
    // A run in flight when the tag is invalidated: it answers its caller, but its value
    // (possibly computed from the old prices) is not kept.
    let early = tokio::spawn({
        let (cache, tagged, gate, started) = (cache.clone(), tagged.clone(), gate.clone(), Arc::clone(&started));
        async move {
            cache
                .get_or_set("a", &tagged, move || async move {
                    started.notify_one();
                    gate.wait().await;
                    Ok::<u32, Error>(1)
                })
                .await
        }
    });
    started.notified().await;
    rt.scope(larder::invalidate_tag("prices")).await;
    gate.open();
    assert_eq!(early.await.unwrap().unwrap(), 1);
    assert_eq!(cache.get::<u32>("a").await, None, "the run began before the invalidation: not stored");

    // A run begun after the invalidation is kept.
    let late: Result<u32, Error> = cache.get_or_set("a", &tagged, || async { Ok(2) }).await;
    assert_eq!(late.unwrap(), 2);
    assert_eq!(cache.get::<u32>("a").await, Some(2), "the run began after the invalidation: stored");
}

#[tokio::test]
async fn get_or_set_many_loads_only_the_missing_keys_in_one_call_in_order() {
    use std::collections::HashMap;
    use std::sync::Mutex as StdMutex;
    let store = larder::MemoryStore::new();
    let make = || larder::Runtime::builder().mount("cache", larder::Mount::memory(10_000).l2(store.clone())).build();
    let (warm, cold) = (make(), make());
    let opts = Options::new().max_age(Duration::from_secs(3600));
    let keys: Vec<String> = (0..100).map(|i| format!("user:{i}")).collect();
    let calls = Arc::new(StdMutex::new(Vec::<Vec<String>>::new()));
    let loader = |calls: Arc<StdMutex<Vec<Vec<String>>>>| {
        move |missing: Vec<String>| async move {
            calls.lock().unwrap().push(missing.clone());
            // The loader finds every key but `user:99`.
            Ok::<_, larder::Error>(
                missing
                    .into_iter()
                    .filter(|k| k != "user:99")
                    .map(|k| (k.clone(), format!("{k}!")))
                    .collect::<HashMap<_, _>>(),
            )
        }
    };
    let cache = warm.cache("cache");
    for k in &keys[..90] {
        cache.set(k, format!("{k}!"), &opts).await;
    }
    let got = cache.get_or_set_many(&keys, &opts, loader(Arc::clone(&calls))).await.unwrap();
    let want: Vec<Option<String>> = (0..100).map(|i| (i != 99).then(|| format!("user:{i}!"))).collect();
    assert_eq!(got, want, "in order, None for what the loader did not find");
    assert_eq!(calls.lock().unwrap().len(), 1, "one loader call");
    assert_eq!(calls.lock().unwrap()[0], keys[90..].to_vec(), "with exactly the missing keys");

    // A cold instance on the same L2: everything but user:99 comes from L2, no load but it.
    let got = cold.cache("cache").get_or_set_many(&keys, &opts, loader(Arc::clone(&calls))).await.unwrap();
    assert_eq!(got, want);
    assert_eq!(calls.lock().unwrap().last().unwrap(), &vec!["user:99".to_owned()], "only the key nobody found");
}
