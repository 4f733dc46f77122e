//! The conformance suite of Portcullis's storage backends.
//!
//! Every backend's integration tests invoke [`conformance_tests!`] with a function that returns a
//! fresh, empty set of stores; the macro expands to one `#[tokio::test]` per case, so a failure names
//! the contract that broke. The cases drive the stores only through the domain's traits.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "a test suite: a failed expectation is a failed test"
)]

pub mod cases;
mod fixtures;

pub use fixtures::TestStores;

/// Expands to one test per conformance case, each on a fresh store from `$fresh` (an async fn
/// returning [`TestStores`]).
#[macro_export]
macro_rules! conformance_tests {
    ($fresh:path) => {
        $crate::__conformance_cases!($fresh;
            apps_round_trip,
            apps_paginate_by_id,
            app_update_checks_revision,
            app_delete_cascades,
            policies_bump_app_revision,
            policy_names_are_unique_per_app,
            policy_update_and_delete,
            users_with_roles_and_tenants,
            user_references_must_exist,
            user_emails_are_unique,
            identities_reach_one_user,
            roles_in_use_cannot_be_deleted,
            tenant_delete_cascades,
            user_delete_cascades_connections,
            connections_upsert_by_key,
            connections_by_identity,
            connections_list_and_delete,
            connection_batch_is_all_or_nothing,
            refresh_lease_is_exclusive,
            refresh_lease_races_have_one_winner,
            refresh_completion_is_fenced,
            refresh_failure_keeps_tokens,
            touch_records_last_use,
            reseal_finds_and_replaces_old_keys,
            consent_states_are_single_use,
            pending_consents_are_capped_per_key,
            first_admin_key_is_inserted_once,
            admin_keys_by_hash,
            clients_round_trip,
            issuers_round_trip,
            data_keys_rotate,
            signing_keys_rotate_and_purge,
            resources_round_trip,
            grants_redeem_once_and_rotate,
            consents_and_passwords,
            refresh_rotations_race,
            audit_filters_and_pages,
            audit_summary_groups_by_bucket,
            management_events_filter_and_page,
            rejected_counts_add_up,
            audit_retention_prunes_old_rows,
            change_sets_apply_all_or_nothing,
            data_key_seals_add_up,
            writes_publish_changes
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($fresh:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let stores = $fresh().await;
                $crate::cases::$case(&stores.stores).await;
            }
        )*
    };
}

#[cfg(test)]
mod tests {
    /// Every public case of `cases.rs` is in the list [`conformance_tests!`] runs on each backend,
    /// and the list names nothing else: a new case cannot be left out of a backend.
    #[test]
    fn every_case_runs_on_every_backend() {
        let cases = include_str!("cases.rs");
        let mut defined: Vec<&str> = cases
            .lines()
            .filter_map(|l| l.strip_prefix("pub async fn "))
            .filter_map(|rest| rest.split('(').next())
            .collect();
        let lib = include_str!("lib.rs");
        let start = lib.find("__conformance_cases!($fresh;").unwrap();
        let end = start + lib[start..].find(");").unwrap();
        let mut listed: Vec<&str> = lib[start..end]
            .lines()
            .skip(1)
            .map(|l| l.trim().trim_end_matches(','))
            .filter(|l| !l.is_empty())
            .collect();
        defined.sort_unstable();
        listed.sort_unstable();
        assert!(!defined.is_empty());
        assert_eq!(defined, listed);
    }
}
