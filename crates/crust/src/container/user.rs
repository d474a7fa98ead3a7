//! The container process's uid, gid and additional gids: the security context's run_as_user /
//! run_as_username / run_as_group / supplemental_groups, else the image's `User`, resolved against
//! the image's own /etc/passwd and /etc/group (group memberships defined in the image count).
//! Those files are read by [`ImageAccounts::load`] through [`crate::safe_fs`]: resolved inside the
//! rootfs (a symlink cannot lead to the host's users), regular files only, at most
//! [`ACCOUNT_FILE_LIMIT`] bytes, on a blocking thread.

use std::path::Path;

use cri_api::v1::LinuxContainerSecurityContext;

use super::spec::ResolvedUser;
use crate::safe_fs::{self, SafeReadError};

/// The most of an image's /etc/passwd or /etc/group that is read.
pub const ACCOUNT_FILE_LIMIT: u64 = 4 << 20;

/// The image's /etc/passwd and /etc/group text (empty where the image has none).
#[derive(Debug, Clone, Default)]
pub struct ImageAccounts {
    pub passwd: String,
    pub group: String,
}

impl ImageAccounts {
    /// Reads both files from the mounted rootfs. Blocking.
    pub fn load(rootfs: &Path) -> Result<ImageAccounts, SafeReadError> {
        let read = |file: &str| -> Result<String, SafeReadError> {
            let bytes = safe_fs::read_in_root(rootfs, Path::new(file), ACCOUNT_FILE_LIMIT)?;
            Ok(String::from_utf8_lossy(&bytes.unwrap_or_default()).into_owned())
        };
        Ok(ImageAccounts {
            passwd: read("/etc/passwd")?,
            group: read("/etc/group")?,
        })
    }
}

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

fn passwd(accounts: &ImageAccounts) -> Vec<Passwd> {
    accounts
        .passwd
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            Some(Passwd {
                name: f.first()?.to_string(),
                uid: f.get(2)?.parse().ok()?,
                gid: f.get(3)?.parse().ok()?,
            })
        })
        .collect()
}

/// (name, gid, members) of each /etc/group line.
fn groups(accounts: &ImageAccounts) -> Vec<(String, u32, Vec<String>)> {
    accounts
        .group
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(':').collect();
            let members = f.get(3).map_or(Vec::new(), |m| {
                m.split(',')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            });
            Some((f.first()?.to_string(), f.get(2)?.parse().ok()?, members))
        })
        .collect()
}

/// Resolves the identity; an unknown user or group name is an error naming it.
pub fn resolve(
    sc: &LinuxContainerSecurityContext,
    image_user: &str,
    accounts: &ImageAccounts,
) -> Result<ResolvedUser, String> {
    let users = passwd(accounts);
    let by_uid = |uid: u32| users.iter().find(|p| p.uid == uid);
    let (user_part, group_part) = match image_user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (image_user, None),
    };
    let (uid, mut gid, name) = if let Some(u) = &sc.run_as_user {
        let uid =
            u32::try_from(u.value).map_err(|_| format!("run_as_user {} out of range", u.value))?;
        let entry = by_uid(uid);
        (
            uid,
            entry.map_or(0, |p| p.gid),
            entry.map(|p| p.name.clone()),
        )
    } else if !sc.run_as_username.is_empty() {
        let p = users
            .iter()
            .find(|p| p.name == sc.run_as_username)
            .ok_or_else(|| {
                format!(
                    "user {:?} not found in the image's /etc/passwd",
                    sc.run_as_username
                )
            })?;
        (p.uid, p.gid, Some(p.name.clone()))
    } else if user_part.is_empty() {
        (0, 0, by_uid(0).map(|p| p.name.clone()))
    } else if let Ok(uid) = user_part.parse::<u32>() {
        let entry = by_uid(uid);
        (
            uid,
            entry.map_or(0, |p| p.gid),
            entry.map(|p| p.name.clone()),
        )
    } else {
        let p = users
            .iter()
            .find(|p| p.name == user_part)
            .ok_or_else(|| format!("image user {user_part:?} not found in its /etc/passwd"))?;
        (p.uid, p.gid, Some(p.name.clone()))
    };
    let all_groups = groups(accounts);
    if let Some(g) = group_part.filter(|_| sc.run_as_group.is_none()) {
        gid = match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => all_groups
                .iter()
                .find(|(n, _, _)| n == g)
                .map(|(_, id, _)| *id)
                .ok_or_else(|| format!("image group {g:?} not found in its /etc/group"))?,
        };
    }
    if let Some(g) = &sc.run_as_group {
        gid =
            u32::try_from(g.value).map_err(|_| format!("run_as_group {} out of range", g.value))?;
    }
    let mut additional: Vec<u32> = Vec::new();
    if let Some(name) = &name {
        additional.extend(
            all_groups
                .iter()
                .filter(|(_, _, members)| members.contains(name))
                .map(|(_, id, _)| *id),
        );
    }
    for g in &sc.supplemental_groups {
        additional
            .push(u32::try_from(*g).map_err(|_| format!("supplemental group {g} out of range"))?);
    }
    additional.sort_unstable();
    additional.dedup();
    additional.retain(|g| *g != gid);
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids: additional,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::Int64Value;

    /// A rootfs dir and the accounts read from it.
    struct Root {
        _dir: tempfile::TempDir,
        accounts: ImageAccounts,
    }

    impl Root {
        fn path(&self) -> &ImageAccounts {
            &self.accounts
        }
    }

    fn rootfs() -> Root {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        std::fs::write(
            t.path().join("etc/passwd"),
            "root:x:0:0::/:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        std::fs::write(
            t.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nextra:x:2000:app\n",
        )
        .unwrap();
        let accounts = ImageAccounts::load(t.path()).unwrap();
        Root { _dir: t, accounts }
    }

    #[test]
    fn hostile_account_files() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("etc")).unwrap();
        // An absolute symlink to a host file resolves inside the rootfs: no users at all.
        let host = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(host.path(), "root:x:0:0::/:/bin/sh\n").unwrap();
        std::os::unix::fs::symlink(host.path(), t.path().join("etc/passwd")).unwrap();
        let fifo = t.path().join("etc/group");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o644)).unwrap();
        let e = ImageAccounts::load(t.path()).unwrap_err();
        assert!(e.to_string().contains("/etc/group is a FIFO"), "{e}");
        std::fs::remove_file(&fifo).unwrap();
        std::os::unix::fs::symlink("/dev/zero", &fifo).unwrap();
        assert!(
            ImageAccounts::load(t.path()).is_ok(),
            "/dev/zero inside is absent"
        );
        let accounts = ImageAccounts::load(t.path()).unwrap();
        assert!(accounts.passwd.is_empty());
        let sc = LinuxContainerSecurityContext {
            run_as_username: "root".into(),
            ..Default::default()
        };
        assert!(resolve(&sc, "", &accounts).is_err());
        std::fs::write(
            t.path().join("big"),
            vec![b'a'; ACCOUNT_FILE_LIMIT as usize + 1],
        )
        .unwrap();
        std::fs::remove_file(t.path().join("etc/passwd")).unwrap();
        std::os::unix::fs::symlink("/big", t.path().join("etc/passwd")).unwrap();
        let e = ImageAccounts::load(t.path()).unwrap_err();
        assert!(matches!(e, SafeReadError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn image_user_and_groups_from_the_image() {
        let r = rootfs();
        let sc = LinuxContainerSecurityContext::default();
        let u = resolve(&sc, "app", r.path()).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids.clone()),
            (1000, 1000, vec![2000])
        );
        let u = resolve(&sc, "1000:extra", r.path()).unwrap();
        assert_eq!((u.uid, u.gid), (1000, 2000));
        assert_eq!(resolve(&sc, "", r.path()).unwrap(), ResolvedUser::default());
        assert!(resolve(&sc, "ghost", r.path())
            .unwrap_err()
            .contains("ghost"));
    }

    #[test]
    fn security_context_wins() {
        let r = rootfs();
        let sc = LinuxContainerSecurityContext {
            run_as_user: Some(Int64Value { value: 1000 }),
            run_as_group: Some(Int64Value { value: 3000 }),
            supplemental_groups: vec![4000],
            ..Default::default()
        };
        let u = resolve(&sc, "root", r.path()).unwrap();
        assert_eq!(
            (u.uid, u.gid, u.additional_gids),
            (1000, 3000, vec![2000, 4000])
        );
        let sc = LinuxContainerSecurityContext {
            run_as_username: "app".into(),
            ..Default::default()
        };
        assert_eq!(resolve(&sc, "", r.path()).unwrap().uid, 1000);
    }
}
