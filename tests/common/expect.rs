//! Expected outputs kept as files under `fixtures/`: a test compares what
//! it got with the file, and `UPDATE_EXPECT=1` rewrites the file instead
//! (review the diff, then commit it).

use std::path::Path;

/// Whether this run rewrites expectations (`UPDATE_EXPECT=1`).
pub fn updating() -> bool {
    std::env::var_os("UPDATE_EXPECT").is_some_and(|v| v == "1")
}

/// Compares `actual` with the file at `path`, or rewrites it when updating.
pub fn expect_file(path: &Path, actual: &str) -> Result<(), String> {
    if updating() {
        std::fs::write(path, actual).unwrap();
        return Ok(());
    }
    let expected = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "{}: {e} (run with UPDATE_EXPECT=1 to create it)",
            path.display()
        )
    })?;
    if expected == actual {
        Ok(())
    } else {
        Err(format!(
            "{} differs (UPDATE_EXPECT=1 rewrites it):\n{}",
            path.display(),
            first_difference(&expected, actual)
        ))
    }
}

/// `expect_file` that panics with the difference.
#[track_caller]
pub fn assert_file(path: &Path, actual: &str) {
    if let Err(e) = expect_file(path, actual) {
        panic!("{e}");
    }
}

/// A few lines around the first line that differs.
pub fn first_difference(expected: &str, actual: &str) -> String {
    let (e, a): (Vec<&str>, Vec<&str>) = (expected.lines().collect(), actual.lines().collect());
    let i = e.iter().zip(&a).take_while(|(x, y)| x == y).count();
    let from = i.saturating_sub(3);
    let show = |v: &[&str]| v[from.min(v.len())..(i + 4).min(v.len())].join("\n");
    format!(
        "--- expected (from line {}):\n{}\n+++ actual:\n{}",
        from + 1,
        show(&e),
        show(&a)
    )
}
