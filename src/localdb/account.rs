//! The unprivileged account the cluster runs as when we are root, because PostgreSQL refuses
//! root, and the checks that it can reach and own the data folder.

use std::fs;
use std::path::Path;

use super::error::io_error;
use super::{Error, UNPRIVILEGED_USER};

/// The account PostgreSQL runs as when we are root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Account {
    pub(super) uid: u32,
    pub(super) gid: u32,
}

/// Finds `name` in passwd-format `text`.
fn parse_passwd(text: &str, name: &str) -> Option<Account> {
    text.lines().find_map(|line| {
        let mut fields = line.split(':');
        if fields.next()? != name {
            return None;
        }
        let _password = fields.next()?;
        let uid = fields.next()?.parse().ok()?;
        let gid = fields.next()?.parse().ok()?;
        Some(Account { uid, gid })
    })
}

pub(super) fn unprivileged_account() -> Result<Account, Error> {
    let text =
        fs::read_to_string("/etc/passwd").map_err(io_error("read", Path::new("/etc/passwd")))?;
    parse_passwd(&text, UNPRIVILEGED_USER).ok_or(Error::NoUnprivilegedUser)
}

pub(super) fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory.
    unsafe { libc::geteuid() == 0 }
}

/// Whether `account` may search (enter) a folder with this mode and owner.
pub(super) fn searchable(mode: u32, owner: u32, group: u32, account: &Account) -> bool {
    if owner == account.uid {
        mode & 0o100 != 0
    } else if group == account.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

pub(super) fn chown(path: &Path, account: &Account) -> Result<(), Error> {
    std::os::unix::fs::chown(path, Some(account.uid), Some(account.gid))
        .map_err(io_error("chown", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOBODY: Account = Account {
        uid: 65534,
        gid: 65534,
    };

    #[track_caller]
    fn check_passwd(text: &str, name: &str, expected: Option<(u32, u32)>) {
        let actual = parse_passwd(text, name).map(|a| (a.uid, a.gid));
        assert_eq!(actual, expected, "{text:?} / {name}");
    }

    #[test]
    fn passwd() {
        let debian = "root:x:0:0:root:/root:/bin/bash\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
        check_passwd(debian, "nobody", Some((65534, 65534)));
        check_passwd(debian, "root", Some((0, 0)));
        check_passwd(debian, "postgres", None);
        check_passwd("nobodyx:x:1:1::/:/bin/sh\n", "nobody", None);
        check_passwd("nobody:x:abc:1::/:/bin/sh\n", "nobody", None);
        check_passwd("nobody:x:1\n", "nobody", None);
        check_passwd("nobody:x:99:98\n", "nobody", Some((99, 98)));
        check_passwd("", "nobody", None);
    }

    #[track_caller]
    fn check_searchable(mode: u32, owner: u32, group: u32, expected: bool) {
        assert_eq!(
            searchable(mode, owner, group, &NOBODY),
            expected,
            "{mode:o}"
        );
    }

    #[test]
    fn searchable_by_nobody() {
        check_searchable(0o40755, 0, 0, true);
        check_searchable(0o41777, 0, 0, true);
        check_searchable(0o40700, 0, 0, false);
        check_searchable(0o40750, 0, 0, false);
        check_searchable(0o40750, 0, 65534, true);
        check_searchable(0o40700, 65534, 0, true);
        check_searchable(0o40077, 65534, 0, false);
        check_searchable(0o40701, 0, 65534, false);
        check_searchable(0o40711, 0, 0, true);
    }
}
