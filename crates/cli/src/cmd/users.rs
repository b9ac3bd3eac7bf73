//! `taxon users add | remove | list | passwd`: the users of the inference server, with their
//! argon2id password hashes and scopes, in the SQLite user store that `taxon serve` reads.
//!
//! Passwords never come from a flag (flags show in `ps` and shell history): from the first
//! line of stdin with `--password-stdin`, from `TAXON_PASSWORD`, or from a no-echo prompt when
//! stdin is a terminal.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use taxon_auth::{
    DEFAULT_USERS_DB, Scope, USERS_DB_ENV, UserInfo, UserStore, check_password_policy,
    check_user_name, format_scopes,
};

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

/// Environment variable a new password can come from (for scripts).
const PASSWORD_ENV: &str = "TAXON_PASSWORD";

#[derive(Debug, Subcommand)]
pub enum UsersCmd {
    /// Add a user. The password comes from --password-stdin, TAXON_PASSWORD, or a prompt, and
    /// needs at least 8 characters, at least 5 of them different, and not one run of
    /// consecutive characters (12345678, abcdefgh).
    Add {
        /// User name: ASCII letters, digits and `._@-`, up to 64 characters.
        name: String,
        /// A scope to grant: `predict` (prediction routes) or `admin` (model reload, alias
        /// changes; does not include predict). Repeat or separate with commas; default predict.
        #[arg(long = "scope", value_name = "SCOPE", value_delimiter = ',', value_parser = parse_scope)]
        scopes: Vec<Scope>,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Remove a user; tokens already issued to it are refused within seconds. Exit 1 when
    /// there is no such user.
    Remove {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The users: name, scopes, creation time (never the hashes).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change a user's password; tokens issued before are refused from then on. Exit 1 when
    /// there is no such user.
    Passwd {
        name: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// Where the user store is.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// The user store, shared with `taxon serve`: a SQLite file, or a `postgres://` URL.
    #[arg(long, env = USERS_DB_ENV, value_name = "PATH", default_value = DEFAULT_USERS_DB)]
    users_db: PathBuf,
}

/// Where a new password comes from.
#[derive(Debug, Args)]
pub struct PasswordArgs {
    /// Read the password from the first line of stdin (instead of TAXON_PASSWORD or a prompt).
    #[arg(long)]
    password_stdin: bool,
}

fn parse_scope(s: &str) -> Result<Scope, String> {
    s.trim()
        .parse()
        .map_err(|e: taxon_auth::AuthError| e.to_string())
}

fn open(store: &StoreArgs) -> anyhow::Result<UserStore> {
    UserStore::open(&store.users_db).with_context(|| {
        format!(
            "opening the user store {}",
            taxon_db::redact_url(&store.users_db.display().to_string())
        )
    })
}

pub fn run(cmd: UsersCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        UsersCmd::Add {
            name,
            scopes,
            password,
            store,
        } => add(&name, scopes, &password, &store, ctx),
        UsersCmd::Remove { name, store } => remove(&name, &store, ctx),
        UsersCmd::List { store } => list(&store, ctx),
        UsersCmd::Passwd {
            name,
            password,
            store,
        } => passwd(&name, &password, &store, ctx),
    }
}

fn add(
    name: &str,
    mut scopes: Vec<Scope>,
    password: &PasswordArgs,
    store_args: &StoreArgs,
    ctx: &Ctx,
) -> anyhow::Result<Outcome> {
    check_user_name(name)?;
    if scopes.is_empty() {
        scopes.push(Scope::Predict);
    }
    let store = open(store_args)?;
    if store.get(name)?.is_some() {
        bail!(
            "user `{name}` already exists in {} (use `taxon users passwd {name}` to change its \
             password)",
            store.path().display()
        );
    }
    let secret = read_new_password(password, &format!("password for {name}: "))?;
    store
        .add(name, &secret, &scopes)
        .with_context(|| format!("adding user `{name}` to {}", store.path().display()))?;
    let user = store
        .get(name)?
        .with_context(|| format!("user `{name}` vanished right after it was added"))?;
    if ctx.json {
        print_json(&user)?;
    } else {
        println!(
            "added user {} (scopes: {}) to {}",
            user.name,
            format_scopes(&user.scopes),
            store.path().display()
        );
    }
    Ok(Outcome::Ok)
}

/// What `remove --json` prints.
#[derive(Serialize)]
struct Removed<'a> {
    name: &'a str,
    removed: bool,
}

fn remove(name: &str, store_args: &StoreArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = open(store_args)?;
    let removed = store.remove(name)?;
    if ctx.json {
        print_json(&Removed { name, removed })?;
    }
    if !removed {
        eprintln!("no user `{name}` in {}", store.path().display());
        return Ok(Outcome::CheckFailed);
    }
    if !ctx.json {
        println!("removed user {name}");
    }
    Ok(Outcome::Ok)
}

fn list(store_args: &StoreArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let store = open(store_args)?;
    let users = store.list()?;
    if ctx.json {
        print_json(&users)?;
        return Ok(Outcome::Ok);
    }
    print_table(&users);
    if users.is_empty() {
        ctx.info(format!(
            "no users in {} (add one with `taxon users add NAME`)",
            store.path().display()
        ));
    }
    Ok(Outcome::Ok)
}

fn print_table(users: &[UserInfo]) {
    let mut t = table(["name", "scopes", "created", "password changed"]);
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&chrono::Local)
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    for u in users {
        let changed = if u.updated_at == u.created_at {
            "-".to_string()
        } else {
            local(u.updated_at)
        };
        t.add_row(vec![
            u.name.clone(),
            format_scopes(&u.scopes),
            local(u.created_at),
            changed,
        ]);
    }
    println!("{t}");
}

fn passwd(
    name: &str,
    password: &PasswordArgs,
    store_args: &StoreArgs,
    ctx: &Ctx,
) -> anyhow::Result<Outcome> {
    let store = open(store_args)?;
    if store.get(name)?.is_none() {
        if ctx.json {
            print_json(&serde_json::json!({ "name": name, "changed": false }))?;
        }
        eprintln!("no user `{name}` in {}", store.path().display());
        return Ok(Outcome::CheckFailed);
    }
    let secret = read_new_password(password, &format!("new password for {name}: "))?;
    store
        .set_password(name, &secret)
        .with_context(|| format!("changing the password of `{name}`"))?;
    let user = store
        .get(name)?
        .with_context(|| format!("user `{name}` was removed while its password changed"))?;
    if ctx.json {
        print_json(&user)?;
    } else {
        println!("changed the password of {name}");
    }
    Ok(Outcome::Ok)
}

/// The new password: `--password-stdin`, else `TAXON_PASSWORD`, else a prompt (twice) when
/// stdin is a terminal. Refuses an empty or short password before anything is written.
fn read_new_password(args: &PasswordArgs, prompt: &str) -> anyhow::Result<String> {
    let password = if args.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let trimmed = line.strip_suffix('\n').unwrap_or(&line);
        let trimmed = trimmed.strip_suffix('\r').unwrap_or(trimmed);
        trimmed.to_string()
    } else if let Ok(p) = std::env::var(PASSWORD_ENV) {
        p
    } else if std::io::stdin().is_terminal() {
        let first = taxon_auth::prompt_password(prompt).context("reading the password")?;
        check(&first)?;
        let again = taxon_auth::prompt_password("repeat it: ").context("reading the password")?;
        if first != again {
            bail!("the two passwords differ; nothing was changed");
        }
        first
    } else {
        bail!(
            "no password given: pipe it with --password-stdin, set {PASSWORD_ENV}, or run in a \
             terminal to be prompted"
        );
    };
    check(&password)?;
    Ok(password)
}

fn check(password: &str) -> anyhow::Result<()> {
    if password.is_empty() {
        bail!("the password is empty; nothing was changed");
    }
    check_password_policy(password)?;
    Ok(())
}
