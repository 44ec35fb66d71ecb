//! The approval side of agent-sandbox: the wire protocol spoken on a session's approval socket
//! ([`proto`]) and the terminal UI that shows the live event feed and the queue of held actions.
//!
//! The supervisor (crate `agent-sandbox`) serves the protocol; `agent-sandbox attach`,
//! `agent-sandbox run --tui` and `agent-sandbox decide` are its clients.

pub mod proto;
