//! The destination-key policy: a key EBS can use in the destination Region, or a named error.

use crate::document::ResolvedKey;
use crate::error::FerryError;
use crate::ports::KeyInfo;

/// The Region of a KMS ARN (`arn:PARTITION:kms:REGION:ACCOUNT:key/…` or `…:alias/…`).
pub fn arn_region(arn: &str) -> Option<&str> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", _, "kms", region, _, resource]
            if !region.is_empty()
                && (resource.starts_with("key/") || resource.starts_with("alias/")) =>
        {
            Some(region)
        }
        _ => None,
    }
}

/// The alias a reference names, if it names one (`alias/x` or an alias ARN).
pub fn alias_of(reference: &str) -> Option<String> {
    if reference.starts_with("alias/") {
        return Some(reference.to_string());
    }
    reference
        .split_once(":alias/")
        .filter(|_| reference.starts_with("arn:"))
        .map(|(_, name)| format!("alias/{name}"))
}

fn hint_for_state(state: &str) -> &'static str {
    match state {
        "Disabled" => "enable it (kms enable-key) or name another key",
        "PendingDeletion" => {
            "cancel its deletion (kms cancel-key-deletion), enable it, or name another key"
        }
        "PendingImport" => "import its key material or name another key",
        "PendingReplicaDeletion" => "name another key: this replica is being deleted",
        _ => "name an Enabled key",
    }
}

/// Applies the policy to what DescribeKey returned in `region` for `reference`.
pub fn check_key(reference: &str, region: &str, key: &KeyInfo) -> Result<ResolvedKey, FerryError> {
    if let Some(key_region) = arn_region(&key.arn).filter(|key_region| *key_region != region) {
        return Err(FerryError::KeyNotInDestinationRegion {
            key: key.arn.clone(),
            key_region: key_region.into(),
            region: region.into(),
        });
    }
    if key.state != "Enabled" {
        return Err(FerryError::KeyNotEnabled {
            key_arn: key.arn.clone(),
            state: key.state.clone(),
            hint: hint_for_state(&key.state).into(),
        });
    }
    if key.spec != "SYMMETRIC_DEFAULT" || key.usage != "ENCRYPT_DECRYPT" {
        return Err(FerryError::KeyNotSymmetric {
            key_arn: key.arn.clone(),
            spec: key.spec.clone(),
            usage: key.usage.clone(),
        });
    }
    Ok(ResolvedKey {
        arn: key.arn.clone(),
        key_id: key.key_id.clone(),
        alias: alias_of(reference),
        multi_region: key.multi_region,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(state: &str, spec: &str, usage: &str) -> KeyInfo {
        KeyInfo {
            arn: "arn:aws:kms:us-west-2:111122223333:key/k1".into(),
            key_id: "k1".into(),
            state: state.into(),
            spec: spec.into(),
            usage: usage.into(),
            multi_region: false,
        }
    }

    #[test]
    fn an_enabled_symmetric_key_resolves_to_its_arn_and_alias() {
        let resolved = check_key(
            "alias/prod",
            "us-west-2",
            &key("Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        )
        .unwrap();
        assert_eq!(resolved.arn, "arn:aws:kms:us-west-2:111122223333:key/k1");
        assert_eq!(resolved.alias.as_deref(), Some("alias/prod"));
    }

    #[test]
    fn disabled_and_pending_deletion_keys_are_not_enabled_with_a_fix() {
        for state in [
            "Disabled",
            "PendingDeletion",
            "PendingImport",
            "Unavailable",
        ] {
            let error = check_key(
                "k1",
                "us-west-2",
                &key(state, "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
            )
            .unwrap_err();
            assert_eq!(error.name(), "KeyNotEnabled", "{state}");
            assert!(error.to_string().contains(state));
        }
        let error = check_key(
            "k1",
            "us-west-2",
            &key("PendingDeletion", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        )
        .unwrap_err();
        assert!(error.to_string().contains("cancel-key-deletion"));
    }

    #[test]
    fn asymmetric_and_hmac_keys_are_refused() {
        for (spec, usage) in [
            ("RSA_2048", "ENCRYPT_DECRYPT"),
            ("HMAC_256", "GENERATE_VERIFY_MAC"),
            ("ECC_NIST_P256", "SIGN_VERIFY"),
        ] {
            assert_eq!(
                check_key("k1", "us-west-2", &key("Enabled", spec, usage))
                    .unwrap_err()
                    .name(),
                "KeyNotSymmetric"
            );
        }
    }

    #[test]
    fn a_key_reported_in_another_region_is_refused() {
        let error = check_key(
            "k1",
            "eu-west-1",
            &key("Enabled", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        )
        .unwrap_err();
        assert_eq!(error.name(), "KeyNotInDestinationRegion");
    }

    #[test]
    fn arns_and_aliases_are_parsed() {
        assert_eq!(
            arn_region("arn:aws:kms:eu-west-1:111122223333:key/abc"),
            Some("eu-west-1")
        );
        assert_eq!(
            arn_region("arn:aws-us-gov:kms:us-gov-west-1:111122223333:alias/x"),
            Some("us-gov-west-1")
        );
        assert_eq!(arn_region("arn:aws:s3:::bucket"), None);
        assert_eq!(
            alias_of("arn:aws:kms:us-west-2:111122223333:alias/prod"),
            Some("alias/prod".into())
        );
        assert_eq!(alias_of("mrk-123"), None);
    }
}
