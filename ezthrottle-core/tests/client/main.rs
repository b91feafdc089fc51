//! Client, Step and golden-JSON tests against real loopback HTTP servers.

mod deadline;
mod errors;
mod forward;
mod golden;
mod secrets;
mod step;
mod submit;
mod support;
