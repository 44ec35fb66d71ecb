//! Policy handling for agent-sandbox: the `policy.toml` schema, its
//! sources, the tighten-only merge, diagnostics for `agent-sandbox policy
//! check`, the rendering for `agent-sandbox policy show`, and the trust store
//! that makes a run use only a repository policy a human approved.
//!
//! # Sources
//! 1. the embedded default ([`DEFAULT_POLICY`], `default-policy.toml`):
//!    credential files of common tools, workspace `.env` files, cloud
//!    metadata endpoints;
//! 2. the user policy, `~/.config/agent-sandbox/policy.toml`: the machine
//!    owner's, may `disable` default rules and set any value;
//! 3. the repository policy: `--policy FILE`, or the first `policy.toml` from
//!    the cwd upward (stopping at the repository root). It may only add rules
//!    and tighten values; [`load`] refuses anything that loosens, naming both
//!    rules.
//!
//! # Public API
//! - [`load`] with [`LoadOptions`] → [`EffectivePolicy`] (every rule carries
//!   its [`Origin`]: [`Source`] and line), [`EffectivePolicy::render`],
//!   [`EffectivePolicy::hash`]; errors are [`PolicyError`].
//! - [`check`] → every [`Diagnostic`] of one file, printed as
//!   `file:line:column: error: message`.
//! - [`PolicyFile::parse`] for one file's text.
//! - Typed values: [`Cidr`], [`PortRange`], [`HostPattern`], [`PathGlob`].
//! - [`TrustStore`] ([`TrustStatus`], [`diff`]) keyed by the policy's
//!   canonical path.
//!
//! Nothing here panics on any input: parse failures become diagnostics.

#![deny(unsafe_code)]

mod diag;
mod glob;
mod merge;
mod schema;
mod trust;
mod types;

pub use diag::{Diagnostic, Level};
pub use glob::{Anchor, PathGlob};
pub use merge::{
    DEFAULT_POLICY, EffectivePolicy, LoadOptions, MAX_POLICY_BYTES, PolicyError,
    USER_POLICY_RELATIVE, check, find_repository_policy, load, sha256_hex,
};
pub use schema::{
    DenyReadRule, ExecRule, HttpRule, Located, NetworkRule, NetworkSection, Origin, PolicyFile,
    ProtectRule, RuleMeta, ScanSection, Source, SqlRule,
};
pub use trust::{TrustError, TrustStatus, TrustStore, diff};
pub use types::{
    Action, Cidr, HostPattern, NetworkDefault, PortRange, ProtectAction, Protocol, Severity,
    ValueError, unmap,
};
