//! AppArmor profiles of CRI security contexts, as containerd treats them: on a host without
//! AppArmor any profile but Unconfined is refused (a pod that asks for confinement must not run
//! unconfined unnoticed); on a host with it, a Localhost profile must be loaded in the kernel and
//! becomes the spec's `process.apparmorProfile`. Profile names are kernel names, never paths.

use std::sync::OnceLock;

use cri_api::v1::{security_profile::ProfileType, SecurityProfile};

/// What a security context asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Profile {
    /// Nothing asked, or Unconfined.
    Unconfined,
    RuntimeDefault,
    /// `localhost/<name>`: a profile loaded on the node.
    Loaded(String),
}

/// True when the kernel has AppArmor enabled (read once).
pub fn enabled() -> bool {
    static ENABLED: OnceLock<bool> = OnceLock::new();
    *ENABLED.get_or_init(|| {
        std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
            .is_ok_and(|s| s.starts_with('Y'))
    })
}

/// The profile `field` (and the deprecated string beside it) asks for.
pub fn choice(profile: Option<&SecurityProfile>, deprecated: &str) -> Result<Profile, String> {
    if let Some(p) = profile {
        return match ProfileType::try_from(p.profile_type) {
            Ok(ProfileType::Unconfined) => Ok(Profile::Unconfined),
            Ok(ProfileType::RuntimeDefault) => Ok(Profile::RuntimeDefault),
            Ok(ProfileType::Localhost) => named(&p.localhost_ref),
            Err(_) => Err(format!(
                "profile_type {} is not a ProfileType",
                p.profile_type
            )),
        };
    }
    match deprecated {
        "" | "unconfined" => Ok(Profile::Unconfined),
        "runtime/default" => Ok(Profile::RuntimeDefault),
        other => match other.strip_prefix("localhost/") {
            Some(name) => named(name),
            None => Err(format!(
                "{other:?} is none of runtime/default, unconfined, localhost/<profile>"
            )),
        },
    }
}

fn named(reference: &str) -> Result<Profile, String> {
    let name = reference.strip_prefix("localhost/").unwrap_or(reference);
    if name.is_empty() || name.len() > 4096 || name.chars().any(char::is_control) {
        return Err(format!("{reference:?} is not an AppArmor profile name"));
    }
    Ok(Profile::Loaded(name.to_string()))
}

/// The `process.apparmorProfile` for `profile` on a host where AppArmor is `on`, `loaded`
/// telling which profiles the kernel has.
pub fn resolve(
    profile: Profile,
    on: bool,
    loaded: impl Fn(&str) -> bool,
) -> Result<Option<String>, String> {
    match profile {
        Profile::Unconfined => Ok(None),
        _ if !on => {
            Err("AppArmor is not enabled on this host: only Unconfined can be asked for".into())
        }
        Profile::RuntimeDefault => {
            // crust does not load a default profile of its own yet: the runtime's default
            // (unconfined under runc) applies.
            tracing::warn!("AppArmor RuntimeDefault asked for: crust loads no default profile yet");
            Ok(None)
        }
        Profile::Loaded(name) if loaded(&name) => Ok(Some(name)),
        Profile::Loaded(name) => Err(format!(
            "AppArmor profile {name:?} is not loaded on this host"
        )),
    }
}

/// The `process.apparmorProfile` a security context's profile (and deprecated string) asks
/// for on this host: [`choice`] then [`resolve`] with the kernel's facts.
pub fn on_this_host(
    profile: Option<&SecurityProfile>,
    deprecated: &str,
) -> Result<Option<String>, String> {
    resolve(choice(profile, deprecated)?, enabled(), is_loaded)
}

/// True when the kernel has a profile named `name` loaded.
pub fn is_loaded(name: &str) -> bool {
    std::fs::read_to_string("/sys/kernel/security/apparmor/profiles").is_ok_and(|all| {
        all.lines()
            .any(|l| l.rsplit_once(" (").map_or(l, |(n, _)| n) == name)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(kind: ProfileType, reference: &str) -> SecurityProfile {
        SecurityProfile {
            profile_type: kind as i32,
            localhost_ref: reference.into(),
        }
    }

    #[test]
    fn choices_from_the_field_and_the_deprecated_string() {
        assert_eq!(choice(None, ""), Ok(Profile::Unconfined));
        assert_eq!(choice(None, "runtime/default"), Ok(Profile::RuntimeDefault));
        assert_eq!(
            choice(None, "localhost/k8s-nginx"),
            Ok(Profile::Loaded("k8s-nginx".into()))
        );
        assert!(choice(None, "../../etc/passwd").is_err());
        let field = sp(ProfileType::Localhost, "localhost/x");
        assert_eq!(
            choice(Some(&field), "ignored"),
            Ok(Profile::Loaded("x".into()))
        );
        assert!(choice(Some(&sp(ProfileType::Localhost, "")), "").is_err());
        assert!(choice(Some(&sp(ProfileType::Localhost, "a\nb")), "").is_err());
        let bogus = SecurityProfile {
            profile_type: 9,
            localhost_ref: String::new(),
        };
        assert!(choice(Some(&bogus), "")
            .unwrap_err()
            .contains("profile_type 9"));
    }

    #[test]
    fn without_apparmor_only_unconfined_passes() {
        assert_eq!(resolve(Profile::Unconfined, false, |_| false), Ok(None));
        assert!(resolve(Profile::RuntimeDefault, false, |_| true).is_err());
        assert!(resolve(Profile::Loaded("p".into()), false, |_| true).is_err());
        assert_eq!(
            resolve(Profile::Loaded("p".into()), true, |n| n == "p"),
            Ok(Some("p".into()))
        );
        assert!(resolve(Profile::Loaded("q".into()), true, |n| n == "p").is_err());
    }
}
