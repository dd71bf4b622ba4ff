//! End-to-end tests: the real `journeyd` binary, a real SQLite file in a
//! temporary directory, the shipped config.

mod admin_flow;
mod config_check;
mod demo;
mod hubspot;
mod portal;
mod support;
mod writeback_cli;
