//! The `plexhub` command's library part: the demo flow, shared by `plexhub demo` and the
//! end-to-end tests.

pub mod demo;
