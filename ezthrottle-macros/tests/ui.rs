//! Compile-time behaviour of `#[auto_forward]`, with trybuild.
//!
//! `tests/ui/pass/*.rs` must compile (and run: each `main` asserts the `Ok` path);
//! `tests/ui/fail/*.rs` must fail with exactly the messages in their `.stderr` files.
//!
//! Only on stable (the toolchain pinned by the workspace, 1.95): compiler messages change
//! between versions. After an intended change, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p ezthrottle-macros --test ui` and read every diff.

#[rustversion::stable]
#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
