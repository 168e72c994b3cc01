//! ARM naming rules for the resource types wid manages.

use crate::error::ArmError;

/// Resource group: 1–90 characters of letters, digits, `_`, `-`, `.`, `(`, `)`, not ending in `.`.
pub fn resource_group(name: &str) -> Result<(), ArmError> {
    let ok = (1..=90).contains(&name.chars().count())
        && !name.ends_with('.')
        && name.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '(' | ')'));
    if ok {
        Ok(())
    } else {
        Err(ArmError::InvalidResourceGroupName(format!(
            "The resource group name '{name}' is invalid: use 1-90 letters, digits, underscores, hyphens, periods or parentheses, not ending in a period."
        )))
    }
}

/// User-assigned identity: `^[a-zA-Z0-9][a-zA-Z0-9_-]{2,127}$`.
pub fn identity(name: &str) -> Result<(), ArmError> {
    let mut chars = name.chars();
    let ok = (3..=128).contains(&name.len())
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if ok {
        Ok(())
    } else {
        Err(ArmError::InvalidResourceName(format!(
            "The managed identity name '{name}' is invalid: use 3-128 letters, digits, hyphens or underscores, starting with a letter or digit."
        )))
    }
}

/// Cluster: 1–63 letters, digits, `-`, `_`, starting and ending with a letter or digit.
pub fn cluster(name: &str) -> Result<(), ArmError> {
    let edge = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    let ok = (1..=63).contains(&name.len())
        && edge(name.chars().next())
        && edge(name.chars().last())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ArmError::InvalidResourceName(format!(
            "The cluster name '{name}' is invalid: use 1-63 letters, digits, hyphens or underscores, starting and ending with a letter or digit."
        )))
    }
}

/// Key vault: 3–24 letters, digits and hyphens, starting with a letter, ending with a letter or digit,
/// no `--` (Key Vault's rule; the name becomes a DNS label of the vault's host).
pub fn vault(name: &str) -> Result<(), ArmError> {
    let ok = (3..=24).contains(&name.len())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
        && !name.contains("--");
    if ok {
        Ok(())
    } else {
        Err(ArmError::VaultNameNotValid(format!(
            "The vault name '{name}' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens."
        )))
    }
}

/// Location: a short token such as `eastus` or `local`.
pub fn location(loc: &str) -> Result<(), ArmError> {
    let ok = (1..=64).contains(&loc.len()) && loc.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(ArmError::LocationNotAvailableForResourceType(format!("The location '{loc}' is invalid.")))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn names() {
        assert!(super::resource_group("myResourceGroup1a2b3c").is_ok());
        assert!(super::resource_group("rg.(x)_-").is_ok());
        for bad in ["", "rg.", "a/b", "..", "a b", &"a".repeat(91)] {
            assert!(super::resource_group(bad).is_err(), "{bad}");
        }
        assert!(super::identity("myIdentity1a2b3c").is_ok());
        for bad in ["ab", "-abc", "a.bc", "a/../b", &"a".repeat(129)] {
            assert!(super::identity(bad).is_err(), "{bad}");
        }
        assert!(super::cluster("myAKSCluster1").is_ok());
        assert!(super::cluster("c").is_ok());
        assert!(super::cluster("c-").is_err());
        assert!(super::location("eastus").is_ok());
        for good in ["abc", "keyvault-workload-id1a2", "a-b-c", "A1b"] {
            assert!(super::vault(good).is_ok(), "{good}");
        }
        for bad in ["ab", "1abc", "-abc", "abc-", "a--b", "a_bc", "a.bc", "kv\u{e9}x", &"a".repeat(25)] {
            assert!(super::vault(bad).is_err(), "{bad}");
        }
        assert!(super::location("east/us").is_err());
    }
}
