//! The approval side of agent-sandbox: the wire protocol spoken on a session's approval socket
//! ([`proto`]), a blocking client of that socket ([`client`]), and the terminal UI that shows
//! the live event feed and the queue of held actions ([`tui`]).
//!
//! The supervisor (crate `agent-sandbox`) serves the protocol; `agent-sandbox attach`,
//! `agent-sandbox run --tui` and `agent-sandbox decide` are its clients:
//!
//! - `decide`: [`Client::connect`], then [`Client::decide`] (or [`Client::list`]);
//! - `attach` and `run --tui`: [`tui::run`], which subscribes ([`Client::subscribe`]) and
//!   drives a [`tui::App`] (pure state: [`tui::App::apply`] for updates, [`tui::App::on_key`]
//!   for keys) drawn by [`tui::draw`].
//!
//! Errors are [`TuiError`]s; each names the socket and says what to do.

pub mod client;
mod error;
pub mod proto;
pub mod tui;

#[cfg(test)]
mod testutil;

pub use client::{Client, Subscription};
pub use error::TuiError;
