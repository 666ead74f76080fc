//! Code shared by the benches and the step-time example.
pub mod step_models;
