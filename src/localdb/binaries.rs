//! Where the PostgreSQL server binaries are: `$PG_BIN`, else the highest installed version.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};

use super::{Error, INSTALL_ROOT};

/// Finds the server binaries: `$PG_BIN`, else the highest `/usr/lib/postgresql/*/bin`.
pub fn bin_dir() -> Result<PathBuf, Error> {
    find_bin_dir(std::env::var_os("PG_BIN"), Path::new(INSTALL_ROOT))
}

fn find_bin_dir(pg_bin: Option<OsString>, root: &Path) -> Result<PathBuf, Error> {
    if let Some(dir) = pg_bin {
        let dir = PathBuf::from(dir);
        if has_binaries(&dir) {
            return Ok(dir);
        }
        return Err(Error::BinariesNotFound {
            looked_in: dir,
            from_env: true,
        });
    }
    let not_found = || Error::BinariesNotFound {
        looked_in: root.to_path_buf(),
        from_env: false,
    };
    let entries = fs::read_dir(root).map_err(|_| not_found())?;
    let mut versions: Vec<((u32, u32), PathBuf)> = entries
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = parse_version(entry.file_name().to_str()?)?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, bin)| has_binaries(bin))
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(not_found)
}

fn has_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// "15" -> (15, 0), "9.6" -> (9, 6); anything else is not a version folder.
fn parse_version(name: &str) -> Option<(u32, u32)> {
    let (major, minor) = name.split_once('.').unwrap_or((name, "0"));
    Some((major.parse().ok()?, minor.parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check_version(name: &str, expected: Option<(u32, u32)>) {
        assert_eq!(parse_version(name), expected, "{name}");
    }

    #[test]
    fn versions() {
        check_version("15", Some((15, 0)));
        check_version("9.6", Some((9, 6)));
        check_version("16", Some((16, 0)));
        check_version("", None);
        check_version("15beta", None);
        check_version("common", None);
        check_version("9.", None);
    }

    #[test]
    fn bin_dir_prefers_pg_bin_then_highest_version() {
        let root =
            std::env::temp_dir().join(format!("hooksink-localdb-unit-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        for version in ["9.6", "15", "16", "17"] {
            let bin = root.join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            // 17 is incomplete: without postgres it must be skipped.
            let programs: &[&str] = if version == "17" {
                &["initdb"]
            } else {
                &["initdb", "postgres"]
            };
            for program in programs {
                fs::write(bin.join(program), "").unwrap();
            }
        }
        assert_eq!(find_bin_dir(None, &root).unwrap(), root.join("16/bin"));
        let pinned = root.join("9.6/bin");
        assert_eq!(
            find_bin_dir(Some(pinned.clone().into()), &root).unwrap(),
            pinned
        );
        let wrong = find_bin_dir(Some(root.join("17/bin").into()), &root).unwrap_err();
        assert_eq!(
            wrong.to_string(),
            format!(
                "postgres binaries (initdb, postgres) not found in PG_BIN={}/17/bin",
                root.display()
            )
        );
        let missing = find_bin_dir(None, &root.join("absent")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            format!(
                "postgres binaries not found in {}/absent/*/bin; set PG_BIN",
                root.display()
            )
        );
        fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn bin_dir_message_names_the_install_root() {
        let missing = find_bin_dir(None, Path::new("/nonexistent/postgresql")).unwrap_err();
        assert_eq!(
            missing.to_string(),
            "postgres binaries not found in /nonexistent/postgresql/*/bin; set PG_BIN"
        );
    }
}
