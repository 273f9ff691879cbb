//! Every misuse of `#[cached]` is one compile error, at the offending option or
//! argument, saying what to write instead. One case per misuse in `tests/ui/`, each with
//! its `.stderr` golden (regenerate with `TRYBUILD=overwrite cargo test --test ui`).

#[test]
fn misuse_is_a_compile_error() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/*.rs");
    // And plain uses build without a warning (`#![deny(warnings)]`) and run.
    cases.pass("tests/ui/pass/*.rs");
}
