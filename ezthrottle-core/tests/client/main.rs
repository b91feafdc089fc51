//! Client, Step and golden-JSON tests against real loopback HTTP servers.

mod errors;
mod forward;
mod golden;
mod secrets;
mod step;
mod submit;
mod support;
