//! End-to-end tests: the real `journeyd` binary, a real SQLite file in a
//! temporary directory, the shipped config.

mod admin_flow;
mod browser;
mod config_check;
mod console;
mod demo;
mod dynamics;
mod environment;
mod export_csv;
mod hubspot;
mod import_file;
mod interrupt;
mod org;
mod portal;
mod salesforce;
mod service;
mod service_signals;
mod state_file;
mod support;
mod systemd_unit;
mod terminal_text;
mod violations_cli;
mod writeback_cli;
mod writeback_crash;
