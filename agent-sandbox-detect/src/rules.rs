//! The table of built-in rules: one id, action, severity and explanation each.
//!
//! Every finding names a [`RuleId`], so a rule id in a verdict always exists in
//! [`crate::Detector::rules`]; the compiler enforces it.

use crate::{Action, Severity};

/// Description of one rule, as listed by [`crate::Detector::rules`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleInfo {
    /// Stable id, e.g. `git.push-force`.
    pub id: String,
    /// Severity reported when it matches (`None` for a user allow rule).
    pub severity: Option<Severity>,
    /// Action taken when it matches.
    pub action: Action,
    /// What the rule catches and why it matters.
    pub explanation: String,
}

macro_rules! rules {
    ($( $variant:ident => ($id:literal, $action:ident, $sev:ident, $text:literal), )*) => {
        /// Identifier of a built-in rule.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub(crate) enum RuleId { $( $variant, )* }

        impl RuleId {
            /// All built-in rules, in listing order.
            pub(crate) const ALL: &'static [RuleId] = &[ $( RuleId::$variant, )* ];

            /// The stable string id.
            pub(crate) fn id(self) -> &'static str {
                match self { $( RuleId::$variant => $id, )* }
            }

            /// The action taken when the rule matches.
            pub(crate) fn action(self) -> Action {
                match self { $( RuleId::$variant => Action::$action, )* }
            }

            /// The severity reported when the rule matches.
            pub(crate) fn severity(self) -> Severity {
                match self { $( RuleId::$variant => Severity::$sev, )* }
            }

            /// The generic explanation of the rule.
            pub(crate) fn explanation(self) -> &'static str {
                match self { $( RuleId::$variant => $text, )* }
            }
        }
    };
}

rules! {
    // ---- files ----
    RmCatastrophic => ("fs.rm-catastrophic", Deny, Critical,
        "deletes /, a top-level system directory or the home directory"),
    RmWorkspaceRoot => ("fs.rm-workspace-root", Ask, Critical,
        "deletes the whole workspace (or a directory containing it)"),
    RmDynamicProtected => ("fs.rm-dynamic-protected", Ask, Critical,
        "deletes a path built from a variable or substitution directly under /, home or the workspace root: if it expands to nothing the whole directory goes"),
    RmGitDir => ("fs.rm-git-dir", Ask, High,
        "deletes the repository's .git directory (all history and unpushed work)"),
    RmRecursiveOutside => ("fs.rm-recursive-outside", Ask, High,
        "recursively deletes a path outside the workspace"),
    RmOutside => ("fs.rm-outside", Ask, Medium,
        "deletes a file outside the workspace"),
    RmUnknownRecursive => ("fs.rm-unknown-recursive", Ask, High,
        "recursively deletes targets that are not statically known (variables, substitutions, xargs input)"),
    RmUnknown => ("fs.rm-unknown", Ask, Medium,
        "deletes files that are not statically known (variables, substitutions, xargs input)"),
    RmRecursiveWorkspace => ("fs.rm-recursive-workspace", Ask, Medium,
        "recursively deletes a directory inside the workspace"),
    RmRecursiveTemp => ("fs.rm-recursive-temp", Ask, Low,
        "recursively deletes a directory under /tmp"),
    FindDelete => ("fs.find-delete", Ask, Medium,
        "find deletes every match (-delete or -exec rm) under its starting points"),
    FindDeleteOutside => ("fs.find-delete-outside", Ask, High,
        "find deletes matches under a directory outside the workspace"),
    FindDeleteProtected => ("fs.find-delete-protected", Ask, Critical,
        "find deletes matches under /, a system directory or the home directory"),
    InlineDelete => ("fs.inline-code-delete", Ask, Medium,
        "inline interpreter code deletes a directory tree (rmtree, rmSync, rm_rf)"),
    Shred => ("fs.shred", Ask, High,
        "shred overwrites file contents irrecoverably"),
    TruncateOutside => ("fs.truncate-outside", Ask, Medium,
        "truncates a file outside the workspace"),
    ChmodRecursiveSystem => ("fs.chmod-recursive-system", Deny, Critical,
        "recursively changes permissions or ownership of /, a system directory or the home directory"),
    ChmodRecursiveOutside => ("fs.chmod-recursive-outside", Ask, Medium,
        "recursively changes permissions or ownership outside the workspace"),
    MvToDevNull => ("fs.mv-to-devnull", Ask, High,
        "moves files onto /dev/null (they are lost)"),
    MvProtected => ("fs.mv-protected", Ask, High,
        "moves away /, a system directory, the home directory or the workspace"),
    RedirectSystemFile => ("fs.redirect-system-file", Ask, High,
        "a shell redirection truncates a file in a system directory"),
    CrontabRemove => ("sys.crontab-remove", Ask, Medium,
        "crontab -r deletes all of the user's cron jobs"),
    ForkBomb => ("sys.fork-bomb", Deny, Critical,
        "a function that calls itself in a pipeline or in the background (fork bomb)"),
    // ---- disks ----
    DiskWrite => ("disk.write-device", Deny, Critical,
        "writes to, formats or wipes a block device"),
    DiskPartition => ("disk.partition", Ask, High,
        "edits a partition table or volume group"),
    DdOutside => ("disk.dd-outside", Ask, Medium,
        "dd overwrites a file outside the workspace"),
    // ---- git ----
    GitPushForce => ("git.push-force", Ask, High,
        "force push (-f, --force, +refspec, --mirror) overwrites remote history"),
    GitPushDelete => ("git.push-delete", Ask, High,
        "deletes remote branches or tags (--delete, :ref, --prune)"),
    GitResetHard => ("git.reset-hard", Ask, High,
        "git reset --hard discards uncommitted changes"),
    GitClean => ("git.clean-force", Ask, High,
        "git clean -f deletes untracked files (with -x also ignored files)"),
    GitBranchForceDelete => ("git.branch-force-delete", Ask, Medium,
        "git branch -D deletes a branch even if it is not merged"),
    GitDiscardAll => ("git.discard-worktree", Ask, Medium,
        "discards uncommitted changes in the whole tree or a directory (checkout ., restore ., checkout -f)"),
    GitDiscardFiles => ("git.discard-files", Ask, Low,
        "discards uncommitted changes to named files (checkout -- file, restore file)"),
    GitHistoryRewrite => ("git.history-rewrite", Ask, High,
        "rewrites the whole history (filter-branch, filter-repo)"),
    GitRefDelete => ("git.update-ref-delete", Ask, Medium,
        "deletes a ref directly"),
    GitReflogExpire => ("git.reflog-expire", Ask, High,
        "expires or deletes reflog entries (removes the safety net for lost commits)"),
    GitPruneNow => ("git.prune-now", Ask, Medium,
        "prunes unreachable objects immediately (lost commits become unrecoverable)"),
    GitStashDrop => ("git.stash-drop", Ask, Medium,
        "drops stashed changes"),
    GitWorktreeForceRemove => ("git.worktree-force-remove", Ask, Medium,
        "force-removes a worktree with its uncommitted changes"),
    // ---- infrastructure as code ----
    IacDestroy => ("iac.destroy", Ask, Critical,
        "destroys infrastructure (terraform/tofu/terragrunt/pulumi/cdk destroy, apply -destroy)"),
    IacApplyAuto => ("iac.apply-auto-approve", Ask, High,
        "applies infrastructure changes without a review prompt"),
    IacApply => ("iac.apply", Ask, Medium,
        "applies infrastructure changes (a plan may replace or delete resources)"),
    IacStateRm => ("iac.state-remove", Ask, High,
        "removes or overwrites resources in infrastructure state"),
    IacWorkspaceDelete => ("iac.workspace-delete", Ask, Medium,
        "deletes an infrastructure workspace or stack"),
    ServerlessRemove => ("iac.serverless-remove", Ask, High,
        "removes a deployed serverless/SST stage and its resources"),
    // ---- kubernetes ----
    K8sDeleteNamespace => ("k8s.delete-namespace", Ask, Critical,
        "deletes a Kubernetes namespace and everything in it"),
    K8sDelete => ("k8s.delete", Ask, High,
        "deletes Kubernetes resources"),
    K8sDrain => ("k8s.drain", Ask, Medium,
        "drains a node (evicts its pods)"),
    K8sReplaceForce => ("k8s.replace-force", Ask, High,
        "replace --force deletes and recreates resources"),
    K8sScaleZero => ("k8s.scale-zero", Ask, Medium,
        "scales a workload to zero replicas"),
    K8sApplyPrune => ("k8s.apply-prune", Ask, High,
        "apply --prune deletes resources missing from the manifests"),
    HelmUninstall => ("k8s.helm-uninstall", Ask, High,
        "uninstalls a Helm release and its resources"),
    // ---- cloud ----
    AwsS3RmRecursive => ("cloud.aws-s3-rm-recursive", Ask, High,
        "deletes every object under an S3 prefix"),
    AwsS3Rm => ("cloud.aws-s3-rm", Ask, Medium,
        "deletes an S3 object"),
    AwsS3Rb => ("cloud.aws-s3-rb", Ask, High,
        "deletes an S3 bucket"),
    AwsS3SyncDelete => ("cloud.aws-s3-sync-delete", Ask, Medium,
        "s3 sync --delete removes destination objects missing from the source"),
    AwsDelete => ("cloud.aws-delete", Ask, High,
        "an AWS delete/terminate/purge operation"),
    GcloudDelete => ("cloud.gcloud-delete", Ask, High,
        "a Google Cloud delete operation"),
    GcsRmRecursive => ("cloud.gcs-rm-recursive", Ask, High,
        "deletes every object under a Cloud Storage prefix, or a bucket"),
    GcsRm => ("cloud.gcs-rm", Ask, Medium,
        "deletes Cloud Storage objects"),
    AzureDelete => ("cloud.azure-delete", Ask, High,
        "an Azure delete operation"),
    AzureGroupDelete => ("cloud.azure-group-delete", Ask, Critical,
        "deletes an Azure resource group and everything in it"),
    PaasDestroy => ("cloud.paas-destroy", Ask, High,
        "deletes an app, service, volume, environment or database on a hosting platform"),
    PaasDbReset => ("cloud.paas-db-reset", Ask, Critical,
        "resets a hosted database (all data lost)"),
    GhRepoDelete => ("cloud.gh-repo-delete", Ask, Critical,
        "deletes a GitHub repository"),
    GhDelete => ("cloud.gh-delete", Ask, Medium,
        "deletes a GitHub release, secret, cache or run"),
    HttpDelete => ("http.delete", Ask, Medium,
        "sends an HTTP DELETE request"),
    HttpDestructiveMutation => ("http.graphql-destructive-mutation", Ask, High,
        "sends a GraphQL mutation that deletes or destroys something"),
    // ---- containers ----
    DockerVolumeRm => ("docker.volume-remove", Ask, High,
        "deletes container volumes (their data)"),
    DockerSystemPruneVolumes => ("docker.system-prune-volumes", Ask, High,
        "system prune --volumes deletes all unused volumes"),
    DockerSystemPrune => ("docker.system-prune", Ask, Medium,
        "system prune deletes stopped containers, networks and caches"),
    DockerComposeDownVolumes => ("docker.compose-down-volumes", Ask, High,
        "compose down -v deletes the project's volumes"),
    DockerRmVolumes => ("docker.rm-volumes", Ask, Medium,
        "removes a container together with its anonymous volumes"),
    // ---- databases ----
    SqlDropDatabase => ("db.sql-drop-database", Ask, Critical,
        "DROP DATABASE or DROP SCHEMA"),
    SqlDropTable => ("db.sql-drop-table", Ask, High,
        "DROP TABLE"),
    SqlDropOther => ("db.sql-drop-object", Ask, Medium,
        "DROP of a view, index, function, user or other object"),
    SqlTruncate => ("db.sql-truncate", Ask, High,
        "TRUNCATE deletes every row"),
    SqlDeleteAll => ("db.sql-delete-all", Ask, High,
        "DELETE without a (non-trivial) WHERE clause deletes every row"),
    SqlUpdateAll => ("db.sql-update-all", Ask, High,
        "UPDATE without a (non-trivial) WHERE clause rewrites every row"),
    SqlAlterDrop => ("db.sql-alter-drop", Ask, Medium,
        "ALTER TABLE ... DROP removes a column or constraint"),
    MongoDrop => ("db.mongo-drop", Ask, High,
        "drops a MongoDB database or collection"),
    MongoDeleteAll => ("db.mongo-delete-all", Ask, High,
        "deletes every document of a MongoDB collection"),
    RedisFlush => ("db.redis-flush", Ask, High,
        "FLUSHALL/FLUSHDB deletes every Redis key"),
    DropDb => ("db.dropdb", Ask, Critical,
        "drops a whole database (dropdb, mysqladmin drop)"),
    FrameworkDbReset => ("db.framework-reset", Ask, High,
        "a framework task that drops, resets or wipes the database (prisma migrate reset, rails db:drop, manage.py flush...)"),
    FrameworkDataLoss => ("db.framework-data-loss", Ask, Medium,
        "a schema push that accepts data loss"),
    // ---- analysis limits ----
    Unparseable => ("analysis.unparseable", Ask, Low,
        "a shell script could not be parsed (or was too large or deeply nested to parse safely); held for a human"),
    TooDeep => ("analysis.too-deep", Ask, Medium,
        "wrappers and scripts nest too deeply to analyse; held for a human"),
    DynamicCommand => ("analysis.dynamic-command", Ask, Low,
        "the program name comes from a variable or substitution and cannot be checked"),
}

impl RuleId {
    /// The listing entry for this rule.
    pub(crate) fn info(self) -> RuleInfo {
        RuleInfo {
            id: self.id().to_string(),
            severity: Some(self.severity()),
            action: self.action(),
            explanation: self.explanation().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn ids_are_unique_and_well_formed() {
        let mut seen = HashSet::new();
        for r in RuleId::ALL {
            assert!(seen.insert(r.id()), "duplicate id {}", r.id());
            assert!(r.id().contains('.'), "id {} has no family prefix", r.id());
            assert!(!r.explanation().is_empty());
            assert_ne!(r.action(), Action::Allow, "a built-in rule never allows");
        }
    }

    #[test]
    fn deny_rules_are_critical() {
        for r in RuleId::ALL {
            if r.action() == Action::Deny {
                assert_eq!(r.severity(), Severity::Critical, "{}", r.id());
            }
        }
    }
}
