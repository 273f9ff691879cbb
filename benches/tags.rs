//! Tags: invalidating a tag costs the same whatever the number of tagged entries
//! (lazy per-tag timestamps), and a hit with tags costs at most one timestamp lookup per
//! tag more than a hit without.
//!
//! - `invalidate_tag/entries=1` vs `invalidate_tag/entries=100000`: `larder::invalidate_tag`
//!   with 1 or 100,000 entries carrying the tag.
//! - `hit/tags=0`, `hit/tags=3`: a warm `#[cached]` hit without and with three tags; with
//!   no tag event since the entry was stored, the tag check is one atomic load.
//! - `hit/tags=3,after_event`: the same after an event on an unrelated tag, so that each of
//!   the three tags is looked up in the mount's tag table.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use larder::{Mount, Options, Runtime};

#[larder::cached(max_age = "1h")]
async fn untagged(x: u64) -> u64 {
    x * 3
}

#[larder::cached(max_age = "1h", tags = ["users", "billing", "eu"])]
async fn tagged(x: u64) -> u64 {
    x * 3
}

fn invalidate(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("invalidate_tag");
    for entries in [1usize, 100_000] {
        let cache_rt = Runtime::builder().mount("cache", Mount::memory(200_000)).build();
        rt.block_on(cache_rt.scope(async {
            let cache = cache_rt.cache("cache");
            let opts = Options::new().max_age(Duration::from_secs(3600)).tag("bulk");
            for i in 0..entries {
                cache.set(&i.to_string(), i as u64, &opts).await;
            }
            assert_eq!(cache_rt.keys("cache", "").len(), entries);
        }));
        group.bench_with_input(BenchmarkId::new("entries", entries), &entries, |b, _| {
            b.to_async(&rt).iter(|| cache_rt.scope(larder::invalidate_tag(black_box("bulk"))));
        });
        // The invalidation took effect for every entry, however cheap it was.
        rt.block_on(cache_rt.scope(async {
            assert_eq!(cache_rt.cache("cache").get::<u64>("0").await, None);
        }));
    }
    group.finish();
}

fn hits(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        untagged(1).await;
        tagged(1).await;
    });
    let mut group = c.benchmark_group("hit");
    group.bench_function("tags=0", |b| b.to_async(&rt).iter(|| async { black_box(untagged(black_box(1)).await) }));
    group.bench_function("tags=3", |b| b.to_async(&rt).iter(|| async { black_box(tagged(black_box(1)).await) }));
    rt.block_on(larder::invalidate_tag("unrelated"));
    assert_eq!(rt.block_on(tagged(1)), 3);
    rt.block_on(larder::expire_tag("also-unrelated"));
    group.bench_function("tags=3,after_event", |b| {
        b.to_async(&rt).iter(|| async { black_box(tagged(black_box(1)).await) })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = invalidate, hits
}
criterion_main!(benches);
