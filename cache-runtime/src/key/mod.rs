//! Storage keys: `{group}:{name}:{key}.json`, how arguments become the key (a canonical
//! encoding of them, hashed), and how a `get_key` result is escaped.
//!
//! # The rule that keeps keys apart
//!
//! `:` separates the parts of a key. The group and the name are one part each and never
//! contain `:` (`cache_keyspace::segment`: a group's `/` is stored as `.`, so `github/users`
//! is `github.users`; text that is not a valid group or name, which only the runtime's
//! string APIs take, becomes its plain characters, `%` and a hash). So the first `:` ends
//! the group and the second the name, and the key after them may hold `:`s of its own
//! (`escape_key` joins a `get_key` result's `/`-separated parts with them):
//!
//! - a function's prefix `{group}:{name}:` starts only its own keys (`NAME_clear`);
//! - a group's entries are under `{group}:`, its sub-groups' under `{group}.` and nothing
//!   else is under either (`clear_group`);
//! - two different (group, name, key) triples never give one storage key.
//!
//! The macro computes a function's prefix at compile time and the runtime at run time, both
//! with `cache-keyspace`. A `Cache` namespace is a segment by the same rule, so
//! `cache.namespace(group).namespace(name)` holds exactly the entries of the function `name`
//! of `group` (the HTTP layer's entries live there: `{group}:{name}:{path parts}…`).

pub(crate) mod canonical;
mod sink;
pub(crate) mod storage_key;
