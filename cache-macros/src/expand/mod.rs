//! The expansion of `#[cached]`, split by what each part produces: `entry.rs` is the
//! attribute (parse → check → expand, or the error path), `expansion.rs` what every item
//! needs, `spec.rs` the spec static, `key.rs` the key expression, `function.rs` the
//! rewritten function and its body, `helpers.rs` the generated helpers, `many.rs` the batch `NAME_many`, `spans.rs` the
//! spans that point type errors at the user's code; `trait_impl.rs` is `#[cached_impl]`.

pub(crate) mod entry;
mod expansion;
mod function;
mod helpers;
mod key;
mod many;
mod spans;
mod spec;
pub(crate) mod trait_impl;
