//! Human tables and machine JSON: the two ways a command prints its result.

use comfy_table::{LineStyle, Table, TableStyle};

/// A header rule and nothing between rows: easy to read, easy to grep.
const HOUSE_STYLE: TableStyle =
    TableStyle::new().header_separator(LineStyle::none().fill('─').junction('─'));
use serde::Serialize;

/// Prints `value` as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A table with a header row, in the house style.
pub fn table<I, S>(header: I) -> Table
where
    I: IntoIterator<Item = S>,
    S: Into<comfy_table::Cell>,
    Vec<S>: Into<comfy_table::Row>,
{
    let mut t = Table::new();
    t.load_style(HOUSE_STYLE);
    t.set_header(header.into_iter().collect::<Vec<S>>());
    t
}

/// Bytes in binary units with one decimal, the one way the CLI prints a size: `812 B`,
/// `2.0 KiB`, `5.0 MiB`, `1.2 GiB`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

#[cfg(test)]
mod tests {
    use super::human_bytes;

    #[test]
    fn bytes_are_human_in_binary_units() {
        assert_eq!(human_bytes(0), "0 B");
        assert_eq!(human_bytes(1023), "1023 B");
        assert_eq!(human_bytes(2048), "2.0 KiB");
        assert_eq!(human_bytes(5 * 1024 * 1024 + 1), "5.0 MiB");
        assert_eq!(human_bytes(3_000_000_000), "2.8 GiB");
        assert_eq!(human_bytes(u64::MAX), "16777216.0 TiB");
    }
}
