//! The destructive-command detector (the `agent-sandbox-detect` crate) with the policy's
//! `[[exec.rule]]` rules added, and the `agent-sandbox classify` command.

pub use agent_sandbox_detect::*;

use crate::policy;

/// The built-in packs plus the effective policy's exec rules.
pub fn detector_for(p: &policy::EffectivePolicy) -> Result<Detector, DetectError> {
    let rules = p
        .exec
        .iter()
        .map(|r| UserRule {
            id: r.meta.id.clone(),
            why: r.meta.why.clone(),
            action: match r.action {
                policy::Action::Allow => Action::Allow,
                policy::Action::Ask => Action::Ask,
                policy::Action::Deny => Action::Deny,
            },
            severity: r.severity.map(|s| match s {
                policy::Severity::Low => Severity::Low,
                policy::Severity::Medium => Severity::Medium,
                policy::Severity::High => Severity::High,
                policy::Severity::Critical => Severity::Critical,
            }),
            pattern: r.pattern.clone(),
        })
        .collect();
    Detector::with_rules(rules)
}
