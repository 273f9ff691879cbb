use larder::cached;

// A mistake in the attribute is its only error: the function and its helpers are still
// there, so code that calls them does not fail a second time.
#[cached(max_age = "soon")]
async fn answer(id: u64) -> u64 {
    id
}

#[allow(dead_code)]
async fn uses() {
    let _: u64 = answer(1).await;
    answer_invalidate(1).await;
    answer_expire(1).await;
    answer_prime(1, 2).await;
    let _: String = answer_key(1);
    answer_clear().await;
    let _ = answer_stats().hits;
    let _: u64 = answer_uncached(1).await;
}

fn main() {}
