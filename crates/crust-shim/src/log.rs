//! The CRI log format: `<RFC3339Nano UTC> <stdout|stderr> <P|F> <text>\n`, one record per line or
//! per 16 KiB piece of a longer line (P marks a piece that the next record continues).

use std::{
    fs::{File, OpenOptions},
    io::Write,
    os::unix::fs::OpenOptionsExt,
    path::Path,
    time::{SystemTime, UNIX_EPOCH},
};

/// Longest text of one record; longer lines are split into P pieces.
pub const MAX_LINE: usize = 16 * 1024;

/// An open CRI log file.
pub struct CriLog {
    file: File,
}

fn open(path: &Path) -> std::io::Result<File> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
}

impl CriLog {
    pub fn open(path: &Path) -> std::io::Result<CriLog> {
        Ok(CriLog { file: open(path)? })
    }

    /// Opens `path` anew (after logrotate moved the old file away: ReopenContainerLog).
    pub fn reopen(&mut self, path: &Path) -> std::io::Result<()> {
        self.file = open(path)?;
        Ok(())
    }

    /// Writes one record; errors are dropped (a full disk must not stop the container).
    pub fn write(&mut self, stream: usize, tag: char, text: &[u8]) {
        let name = if stream == 0 { "stdout" } else { "stderr" };
        let mut record = Vec::with_capacity(text.len() + 48);
        record.extend_from_slice(rfc3339_nano(now_ns()).as_bytes());
        record.extend_from_slice(format!(" {name} {tag} ").as_bytes());
        record.extend_from_slice(text);
        record.push(b'\n');
        let _ = self.file.write_all(&record);
    }
}

/// Nanoseconds since the epoch.
pub fn now_ns() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i128)
        .unwrap_or(0)
}

/// `2016-10-06T00:17:09.669794202Z` for `ns` since the epoch.
pub fn rfc3339_nano(ns: i128) -> String {
    let secs = ns.div_euclid(1_000_000_000) as i64;
    let nanos = ns.rem_euclid(1_000_000_000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nanos:09}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Howard Hinnant's days-to-civil algorithm.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_rfc3339_nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00.000000000Z");
        assert_eq!(
            rfc3339_nano(1_475_713_029_669_794_202),
            "2016-10-06T00:17:09.669794202Z"
        );
        assert_eq!(
            rfc3339_nano(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn records_and_pieces() {
        let dir = std::env::temp_dir().join(format!("crust-shim-log-{}", std::process::id()));
        let path = dir.join("c.log");
        let mut log = CriLog::open(&path).unwrap();
        log.write(0, 'F', b"hello");
        log.write(1, 'P', b"part");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].ends_with(" stdout F hello"), "{}", lines[0]);
        assert!(lines[1].ends_with(" stderr P part"), "{}", lines[1]);
        assert_eq!(lines[0].find(' '), Some(30));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
