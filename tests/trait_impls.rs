//! `#[cached]` on the methods of a trait impl, through `#[cached_impl]` on the block: callers
//! through the trait (generic or `dyn`-free) hit the cache, each type has its own keys, and
//! the helpers sit on the type.

mod common;

use std::sync::LazyLock;

use common::{Runs, runtime};
use larder::{cached, cached_impl};

trait Repo {
    async fn find(&self, id: u64) -> Result<String, String>;
    fn label(&self) -> &'static str;
}

#[derive(Clone)]
struct Postgres;
#[derive(Clone)]
struct Sqlite;

static PG_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);
static SQL_RUNS: LazyLock<Runs> = LazyLock::new(Runs::new);

#[cached_impl]
impl Repo for Postgres {
    #[cached(max_age = "1h", group = "repos")]
    async fn find(&self, id: u64) -> Result<String, String> {
        PG_RUNS.hit();
        Ok(format!("pg {id}"))
    }

    fn label(&self) -> &'static str {
        "pg"
    }
}

#[cached_impl]
impl Repo for Sqlite {
    #[cached(max_age = "1h", group = "repos")]
    async fn find(&self, id: u64) -> Result<String, String> {
        SQL_RUNS.hit();
        Ok(format!("sqlite {id}"))
    }

    fn label(&self) -> &'static str {
        "sqlite"
    }
}

/// A caller that only knows the trait.
async fn lookup<R: Repo>(repo: &R, id: u64) -> String {
    format!("{}: {}", repo.label(), repo.find(id).await.unwrap())
}

#[tokio::test]
async fn trait_methods_are_cached_per_type_and_their_helpers_sit_on_the_type() {
    let (rt, _clock) = runtime();
    rt.scope(async {
        assert_eq!(lookup(&Postgres, 1).await, "pg: pg 1");
        assert_eq!(lookup(&Postgres, 1).await, "pg: pg 1");
        assert_eq!(PG_RUNS.get(), 1, "the second call through the trait was a hit");
        assert_eq!(lookup(&Sqlite, 1).await, "sqlite: sqlite 1", "another type, other keys");
        assert_eq!(SQL_RUNS.get(), 1);
        assert!(Postgres.find_key(1).starts_with("repos:Postgres_find:"), "{}", Postgres.find_key(1));

        Postgres.find_invalidate(1).await;
        lookup(&Postgres, 1).await;
        assert_eq!(PG_RUNS.get(), 2, "the helper invalidated the trait method's entry");
        lookup(&Sqlite, 1).await;
        assert_eq!(SQL_RUNS.get(), 1, "and only that type's");
    })
    .await;
}
