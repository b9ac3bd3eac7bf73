//! Reading a password from the terminal without echo, for `taxon users add | passwd` (here so
//! the command line and any other front end share one implementation).

/// Prints `prompt` on the terminal and reads one line without echoing it. Reads from the
/// controlling terminal (`/dev/tty`), not stdin; fails when there is none.
pub fn prompt_password(prompt: &str) -> std::io::Result<String> {
    rpassword::prompt_password(prompt)
}
