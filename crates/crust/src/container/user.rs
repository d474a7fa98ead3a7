//! The container process's uid, gid and additional gids: the security context's run_as_user /
//! run_as_username / run_as_group / supplemental_groups, else the image's `User`, resolved against
//! the image's own /etc/passwd and /etc/group (group memberships defined in the image count).

use std::path::Path;

use cri_api::v1::LinuxContainerSecurityContext;

use super::spec::ResolvedUser;

struct Passwd {
    name: String,
    uid: u32,
    gid: u32,
}

fn passwd(rootfs: &Path) -> Vec<Passwd> {
    std::fs::read_to_string(rootfs.join("etc/passwd"))
        .unwrap_or_default()
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
fn groups(rootfs: &Path) -> Vec<(String, u32, Vec<String>)> {
    std::fs::read_to_string(rootfs.join("etc/group"))
        .unwrap_or_default()
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
    rootfs: &Path,
) -> Result<ResolvedUser, String> {
    let users = passwd(rootfs);
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
    let all_groups = groups(rootfs);
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

    fn rootfs() -> tempfile::TempDir {
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
        t
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
