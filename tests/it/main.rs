//! One integration-test binary (one link step on small CI machines), one module per area.

mod support;

mod backend;
mod bench_cli;
mod c14n;
mod conformance;
mod ebms;
mod faults;
mod fuzz_regressions;
mod hostile;
mod interop_as4py;
mod interop_as4py_http;
mod lifecycle;
mod mime;
mod msh;
mod oots;
mod oots_api;
mod oots_demo;
mod packaging;
mod pmode;
mod security;
mod store;
mod telemetry;
mod transport;
mod walkthrough;
