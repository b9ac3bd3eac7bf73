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
