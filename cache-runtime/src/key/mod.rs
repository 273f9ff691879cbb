//! Storage keys: `{group}:{name}:{key}.json`, how arguments become the key (a canonical
//! encoding of them, hashed), and how a `get_key` result is escaped.

pub(crate) mod canonical;
pub(crate) mod storage_key;
