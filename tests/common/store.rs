//! Test stores that wrap another: the methods they pass straight through.

/// Inside an `impl Store for Wrapper`, the methods that go straight to `self.$inner`:
/// `delete`, `delete_prefix`, `keys`, `raise` and `replace`.
#[allow(unused_macros)]
macro_rules! pass_through_store {
    ($inner:ident) => {
        fn delete<'a>(&'a self, key: &'a str) -> larder::StoreFuture<'a, bool> {
            self.$inner.delete(key)
        }
        fn delete_prefix<'a>(&'a self, prefix: &'a str) -> larder::StoreFuture<'a, u64> {
            self.$inner.delete_prefix(prefix)
        }
        fn keys<'a>(&'a self, prefix: &'a str) -> larder::StoreFuture<'a, Vec<String>> {
            self.$inner.keys(prefix)
        }
        fn raise<'a>(
            &'a self,
            key: &'a str,
            stamp: u64,
            ttl: Option<std::time::Duration>,
        ) -> larder::StoreFuture<'a, u64> {
            self.$inner.raise(key, stamp, ttl)
        }
        fn replace<'a>(&'a self, key: &'a str, value: Vec<u8>) -> larder::StoreFuture<'a, bool> {
            self.$inner.replace(key, value)
        }
    };
}
#[allow(unused_imports)]
pub(crate) use pass_through_store;
