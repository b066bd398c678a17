//! A whole cluster on this machine: `keel server` and three `keel-agent` processes on the real
//! Docker engine, driven only by git commits. What is asserted is what runs: pods in the API
//! and containers counted in Docker.

mod autoscaling;
mod browser;
mod demo;
mod ha;
mod keel_up;
mod kubectl;
mod network;
mod ordering;
mod rollout;
mod service_paths;
mod services;
mod shop;
mod streams;
mod support;
