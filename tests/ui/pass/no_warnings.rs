//! Code that uses `#[cached]` the plain way builds without a single warning.
#![deny(warnings)]

use larder::cached;

#[cached(max_age = "1m")]
async fn one_line(n: u64) -> u64 { n + 1 }

fn same(s: &str) -> &str { s }

#[cached(max_age = "1m", get_key = same)]
async fn by_str(s: &str) -> usize { s.len() }

#[cached(max_age = "1m", get_key = |id: &i64| *id)]
async fn by_int(id: i64) -> i64 { id }

#[cached(max_age = "1m", get_key = |a: &u32, b: &u32| format!("{a}/{b}"))]
async fn by_string(a: u32, b: u32) -> u32 { a + b }

#[derive(Clone)]
struct Repo;

impl Repo {
    #[cached(max_age = "1m", swr)]
    async fn stars(&self, name: &str) -> Result<u32, larder::Error> { Ok(name.len() as u32) }
}

#[cached(max_age = "1m")]
fn sync_one_line(n: u64) -> u64 { n + 1 }

impl Repo {
    #[cached(max_age = "1m", swr, grace = "1h", timeout = "1s")]
    fn forks(&self, name: &str) -> Result<u32, String> {
        if name.is_empty() {
            return Err("no name".to_owned());
        }
        Ok(name.len() as u32)
    }
}

fn main() {
    assert_eq!(sync_one_line(1), 2);
    assert_eq!(Repo.forks("abc"), Ok(3));
    Repo.forks_invalidate("abc");
    assert_eq!(sync_one_line_many([1, 2]), vec![2, 3]);
    assert_eq!(Repo.forks_many(["a", ""]), vec![Ok(1), Err("no name".to_owned())]);
    sync_one_line_clear();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        assert_eq!(one_line(1).await, 2);
        assert_eq!(by_str("abc").await, 3);
        assert_eq!(by_str_many(["abc", "de"]).await, vec![3, 2]);
        assert_eq!(by_string_many([(1, 2), (3, 4)]).await, vec![3, 7]);
        assert_eq!(by_int(-4).await, -4);
        assert_eq!(by_string(1, 2).await, 3);
        assert_eq!(Repo.stars("ab").await, Ok(2));
        assert_eq!(by_int_key(-4), "functions:by_int:-4.json");
    });
}
