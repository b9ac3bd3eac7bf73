//! Registry behaviour end to end over real parts: runs recorded in a real run store, model
//! folders on disk, a local artifact store, the registry database; version allocation under
//! concurrency, the alias history and `alias_at`, the promotion gate, tamper detection, and a
//! register killed between upload and commit. Every test runs twice: on a SQLite file and on a
//! real PostgreSQL database (`TAXON_TEST_POSTGRES_URL`; see taxon_db::testing).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, TimeZone, Utc};
use taxon_core::Md5Hex;
use taxon_core::model::{InputLimits, MODEL_FORMAT_VERSION, ModelDescription, ModelFile};
use taxon_db::testing::TestPostgres;
use taxon_track::artifacts::folder_artifacts;
use taxon_track::{NewRun, RunEnd, RunRecord, RunStore};

use crate::*;

/// A scratch project: a run store, model folders, a registry with a local artifact store.
struct Project {
    dir: tempfile::TempDir,
    runs: RunStore,
    /// The registry's PostgreSQL database; `None`: a SQLite file in `dir`.
    pg: Option<TestPostgres>,
}

impl Project {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        Self::at(dir, None)
    }

    /// A project whose registry is a fresh PostgreSQL database, when a test server is set.
    fn postgres(test: &str) -> Option<Self> {
        let pg = taxon_db::testing::postgres(test)?;
        Some(Self::at(tempfile::tempdir().unwrap(), Some(pg)))
    }

    fn at(dir: tempfile::TempDir, pg: Option<TestPostgres>) -> Self {
        let runs = RunStore::open(&dir.path().join(".taxon/runs.db")).unwrap();
        Self { dir, runs, pg }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn registry(&self) -> Registry {
        let mut reg = Registry::open_with(&self.db(), self.artifacts().to_str().unwrap()).unwrap();
        // As `Registry::open` does for a project whose registry is on PostgreSQL.
        reg.set_cache_dir(self.path().join(".taxon/registry/cache"));
        reg
    }

    fn db(&self) -> PathBuf {
        match &self.pg {
            Some(pg) => PathBuf::from(&pg.url),
            None => self.path().join(".taxon/registry.db"),
        }
    }

    fn artifacts(&self) -> PathBuf {
        self.path().join("artifacts")
    }

    /// A model folder `name` with a weights file whose bytes depend on `name`.
    fn model_folder(&self, name: &str) -> PathBuf {
        let dir = self.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let weights = format!("weights of {name}").repeat(100).into_bytes();
        std::fs::write(dir.join("weights.bin"), &weights).unwrap();
        std::fs::write(dir.join("metrics.json"), b"{}\n").unwrap();
        ModelDescription {
            format_version: MODEL_FORMAT_VERSION,
            model_type: "linear".into(),
            labels: vec!["sport".into(), "tech".into()],
            params: serde_json::json!({"dim": 4}),
            input: InputLimits {
                max_tokens: Some(128),
                lowercase: true,
            },
            files: vec![ModelFile {
                name: "weights.bin".into(),
                bytes: weights.len() as u64,
                md5: Md5Hex::of_bytes(&weights),
            }],
            created_by: "taxon test".into(),
        }
        .write(&dir)
        .unwrap();
        dir
    }

    /// A finished train run that made `folder`, with `metrics`.
    fn train_run(&mut self, folder: &Path, metrics: &[(&str, f64)]) -> RunRecord {
        let id = self
            .runs
            .create_run(&NewRun {
                name: format!("linear {}", folder.display()),
                kind: "train".into(),
                model_type: Some("linear".into()),
                data_path: Some("train.jsonl".into()),
                data_version: Some("0123456789abcdef0123456789abcdef".into()),
                ..Default::default()
            })
            .unwrap();
        self.runs
            .finish(
                &id,
                &RunEnd {
                    metrics: metrics.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
                    artifacts: folder_artifacts(folder, "model", &["checkpoints"]).unwrap(),
                    ..Default::default()
                },
            )
            .unwrap();
        self.runs.get(&id).unwrap()
    }
}

/// Each test below runs on SQLite (`tests::NAME::sqlite`) and on PostgreSQL
/// (`tests::NAME::postgres`, skipped with a notice when no test server is set).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Project::new())
            }

            #[test]
            fn postgres() {
                if let Some(p) = super::Project::postgres(stringify!($name)) {
                    super::$name(p)
                }
            }
        }
    )*};
}

on_both_backends!(
    versions_count_per_name_and_carry_the_run_lineage,
    only_finished_train_runs_with_unchanged_consistent_files_register,
    concurrent_registers_never_share_a_version_number,
    concurrent_alias_moves_never_lose_a_history_row,
    every_alias_change_is_recorded_and_alias_at_answers_for_any_time,
    the_gate_refuses_a_worse_production_version_unless_forced,
    materialized_folders_are_verified_and_tampering_is_refused,
    a_record_that_disagrees_with_model_json_is_refused,
);

/// The server keeps a registry behind a mutex and hands it to blocking threads.
#[test]
fn a_registry_can_move_between_threads() {
    fn send<T: Send>() {}
    send::<Registry>();
}

fn opts(name: &str) -> RegisterOptions {
    RegisterOptions {
        name: name.into(),
        description: Some("test".into()),
        actor: "alice".into(),
        allow_duplicate: false,
    }
}

fn by(actor: &str) -> AliasOptions {
    AliasOptions {
        actor: actor.into(),
        ..Default::default()
    }
}

fn versions_count_per_name_and_carry_the_run_lineage(mut p: Project) {
    let f1 = p.model_folder("m1");
    let f2 = p.model_folder("m2");
    let r1 = p.train_run(&f1, &[("validation_accuracy", 0.9), ("train_seconds", 1.0)]);
    let r2 = p.train_run(&f2, &[("validation_accuracy", 0.8)]);
    let mut reg = p.registry();

    let v1 = reg.register(&r1, &opts("default")).unwrap();
    let v2 = reg.register(&r2, &opts("default")).unwrap();
    let other = reg.register(&r2, &opts("spam")).unwrap();
    assert_eq!((v1.version, v2.version, other.version), (1, 2, 1));
    assert_eq!(v1.run_id, r1.summary.id);
    assert_eq!(v1.model_type, "linear");
    assert_eq!(v1.labels, ["sport", "tech"]);
    assert_eq!(v1.input.max_tokens, Some(128));
    assert_eq!(
        v1.data_version.as_deref(),
        Some("0123456789abcdef0123456789abcdef")
    );
    assert_eq!(v1.metrics["validation_accuracy"], 0.9);
    assert_eq!(v1.created_by, "alice");
    let names: Vec<&str> = v1.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["metrics.json", "model.json", "weights.bin"]);

    assert_eq!(reg.models().unwrap(), ["default", "spam"]);
    assert_eq!(reg.list(None).unwrap().len(), 3);
    assert_eq!(reg.list(Some("default")).unwrap(), [v1.clone(), v2.clone()]);
    assert_eq!(reg.resolve("default", "latest").unwrap(), v2);
    assert_eq!(reg.resolve("default", "v1").unwrap(), v1);
    assert_eq!(reg.resolve("default", "2").unwrap(), v2);
    let err = reg.get("default", 3).unwrap_err().to_string();
    assert!(err.contains("no version 3 (versions 1 to 2)"), "{err}");
    let err = reg.list(Some("nope")).unwrap_err().to_string();
    assert!(err.contains("models: default, spam"), "{err}");
    let err = reg
        .resolve("default", "production")
        .unwrap_err()
        .to_string();
    assert!(err.contains("no alias \"production\""), "{err}");

    // The same run again: refused, naming the existing version, unless asked for.
    let err = reg.register(&r1, &opts("default")).unwrap_err().to_string();
    assert!(err.contains("already registered as default v1"), "{err}");
    let again = reg
        .register(
            &r1,
            &RegisterOptions {
                allow_duplicate: true,
                ..opts("default")
            },
        )
        .unwrap();
    assert_eq!(again.version, 3);

    // A second handle on the same files sees the same versions.
    assert_eq!(p.registry().list(Some("default")).unwrap().len(), 3);
}

fn only_finished_train_runs_with_unchanged_consistent_files_register(mut p: Project) {
    let folder = p.model_folder("m");
    let mut reg = p.registry();

    let mut eval = p.train_run(&folder, &[]);
    eval.summary.kind = "eval".into();
    let err = reg
        .register(&eval, &opts("default"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("it is a eval run"), "{err}");

    let mut running = p.train_run(&folder, &[]);
    running.summary.status = taxon_track::RunStatus::Running;
    let err = reg
        .register(&running, &opts("default"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("only finished train runs"), "{err}");

    let mut empty = p.train_run(&folder, &[]);
    empty.artifacts.clear();
    let err = reg
        .register(&empty, &opts("default"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no model files"), "{err}");

    let err = reg
        .register(&p.train_run(&folder, &[]), &opts("Bad Name"))
        .unwrap_err();
    assert!(err.to_string().contains("invalid model name"), "{err}");

    // The weights changed after the run recorded them: refused, naming file and both hashes.
    let run = p.train_run(&folder, &[]);
    let recorded = run
        .artifacts
        .iter()
        .find(|a| a.name == "model/weights.bin")
        .unwrap()
        .md5
        .clone();
    std::fs::write(folder.join("weights.bin"), b"retrained in place").unwrap();
    let err = reg
        .register(&run, &opts("default"))
        .unwrap_err()
        .to_string();
    let now = Md5Hex::of_bytes(b"retrained in place");
    assert!(err.contains("model file weights.bin"), "{err}");
    assert!(
        err.contains(&recorded) && err.contains(now.as_str()),
        "{err}"
    );

    // model.json lists a file the run did not record.
    let other = p.model_folder("other");
    let run = p.train_run(&other, &[]);
    let mut run_missing = run.clone();
    run_missing
        .artifacts
        .retain(|a| a.name != "model/weights.bin");
    let err = reg
        .register(&run_missing, &opts("default"))
        .unwrap_err()
        .to_string();
    assert!(err.contains("it lists weights.bin"), "{err}");

    assert!(reg.models().unwrap().is_empty(), "nothing was registered");
    assert_eq!(reg.register(&run, &opts("default")).unwrap().version, 1);
}

fn concurrent_registers_never_share_a_version_number(mut p: Project) {
    let folder = p.model_folder("m");
    let run = p.train_run(&folder, &[("validation_accuracy", 0.5)]);
    p.registry(); // create the schema once
    let db = p.db();
    let url = p.artifacts().display().to_string();
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let (db, url, run) = (db.clone(), url.clone(), run.clone());
            std::thread::spawn(move || {
                let mut reg = Registry::open_with(&db, &url).unwrap();
                let o = RegisterOptions {
                    allow_duplicate: true,
                    ..opts("default")
                };
                (0..4)
                    .map(|_| reg.register(&run, &o).unwrap().version)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut all: Vec<u64> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    all.sort();
    assert_eq!(all, (1..=12).collect::<Vec<_>>());
}

/// Regression guard for shared registries: concurrent `alias set`s from several connections
/// (replicas, CLIs) each leave their history row, and the rows form one chain (each move starts
/// where the previous one ended).
fn concurrent_alias_moves_never_lose_a_history_row(mut p: Project) {
    let folder = p.model_folder("m");
    let run = p.train_run(&folder, &[("validation_accuracy", 0.5)]);
    let mut reg = p.registry();
    let o = RegisterOptions {
        allow_duplicate: true,
        ..opts("default")
    };
    for _ in 0..3 {
        reg.register(&run, &o).unwrap();
    }
    let (db, url) = (p.db(), p.artifacts().display().to_string());
    let moves: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let (db, url) = (&db, &url);
                s.spawn(move || {
                    let mut reg = Registry::open_with(db, url).unwrap();
                    (0..10u64)
                        .filter(|i| {
                            let v = 1 + (t + i) % 3;
                            !reg.set_alias("default", "staging", v, &by("ci"))
                                .unwrap()
                                .is_noop()
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    let history = reg.history("default", Some("staging")).unwrap();
    assert_eq!(history.len(), moves, "one history row per move");
    assert_eq!(history[0].from_version, None);
    for w in history.windows(2) {
        assert_eq!(w[1].from_version, w[0].to_version, "{history:#?}");
    }
    let last = history.last().unwrap().to_version;
    assert_eq!(
        Some(reg.resolve("default", "staging").unwrap().version),
        last
    );
}

/// A registry whose clock reads the returned cell.
fn with_clock(reg: &mut Registry, start: DateTime<Utc>) -> Arc<Mutex<DateTime<Utc>>> {
    let cell = Arc::new(Mutex::new(start));
    let c = cell.clone();
    reg.set_clock(Arc::new(move || *c.lock().unwrap()));
    cell
}

fn every_alias_change_is_recorded_and_alias_at_answers_for_any_time(mut p: Project) {
    let runs: Vec<RunRecord> = (1..=3)
        .map(|i| {
            let f = p.model_folder(&format!("m{i}"));
            p.train_run(&f, &[("validation_accuracy", 0.5 + i as f64 / 10.0)])
        })
        .collect();
    let mut reg = p.registry();
    for r in &runs {
        reg.register(r, &opts("default")).unwrap();
    }
    let t0 = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
    let clock = with_clock(&mut reg, t0);
    let at = |h: i64| t0 + Duration::hours(h);

    reg.set_alias("default", "production", 1, &by("alice"))
        .unwrap();
    *clock.lock().unwrap() = at(2);
    reg.set_alias("default", "staging", 3, &by("bob")).unwrap();
    let moved = reg
        .set_alias("default", "production", 2, &by("bob"))
        .unwrap();
    assert_eq!((moved.from_version, moved.to_version), (Some(1), Some(2)));
    assert!(!moved.forced);
    assert!(
        moved.reason.as_deref().unwrap().contains("gate passed"),
        "{moved:?}"
    );
    *clock.lock().unwrap() = at(4);
    // Setting an alias to the version it holds changes and records nothing.
    let same = reg
        .set_alias("default", "production", 2, &by("carol"))
        .unwrap();
    assert!(same.is_noop());
    let removed = reg.remove_alias("default", "production", "carol").unwrap();
    assert_eq!((removed.from_version, removed.to_version), (Some(2), None));
    let err = reg
        .remove_alias("default", "production", "carol")
        .unwrap_err();
    assert!(err.to_string().contains("aliases: staging -> v3"), "{err}");

    let hist = reg.history("default", Some("production")).unwrap();
    let steps: Vec<_> = hist
        .iter()
        .map(|c| (c.from_version, c.to_version, c.actor.as_str(), c.at))
        .collect();
    assert_eq!(
        steps,
        [
            (None, Some(1), "alice", at(0)),
            (Some(1), Some(2), "bob", at(2)),
            (Some(2), None, "carol", at(4)),
        ]
    );
    assert_eq!(reg.history("default", None).unwrap().len(), 4);
    // Pages of the history, newest first, with the total.
    let (page, total) = reg.history_page("default", 0, 2).unwrap();
    assert_eq!(total, 4);
    let page: Vec<_> = page
        .iter()
        .map(|c| (c.alias.as_str(), c.to_version))
        .collect();
    assert_eq!(page, [("production", None), ("production", Some(2))]);
    let (page, _) = reg.history_page("default", 3, 2).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(
        (page[0].actor.as_str(), page[0].to_version),
        ("alice", Some(1))
    );
    assert!(reg.history_page("default", 9, 2).unwrap().0.is_empty());
    assert_eq!(
        reg.aliases("default").unwrap(),
        BTreeMap::from([("staging".into(), 3)])
    );

    let q = |t| reg.alias_at("default", "production", t).unwrap();
    assert_eq!(q(at(0) - Duration::seconds(1)), None);
    assert_eq!(q(at(0)), Some(1));
    assert_eq!(q(at(1)), Some(1));
    assert_eq!(q(at(2)), Some(2));
    assert_eq!(q(at(3)), Some(2));
    assert_eq!(q(at(4)), None);
    assert_eq!(reg.alias_at("default", "staging", at(5)).unwrap(), Some(3));
    assert_eq!(reg.alias_at("default", "canary", at(5)).unwrap(), None);

    let err = reg.set_alias("default", "v2", 1, &by("x")).unwrap_err();
    assert!(err.to_string().contains("invalid alias name"), "{err}");
    let err = reg.set_alias("default", "qa", 9, &by("x")).unwrap_err();
    assert!(err.to_string().contains("no version 9"), "{err}");
}

fn the_gate_refuses_a_worse_production_version_unless_forced(mut p: Project) {
    let good = p.model_folder("good");
    let bad = p.model_folder("bad");
    let bare = p.model_folder("bare");
    let rg = p.train_run(
        &good,
        &[("eval.test.macro_f1", 0.92), ("validation_macro_f1", 0.5)],
    );
    let rb = p.train_run(
        &bad,
        &[("eval.test.macro_f1", 0.61), ("validation_macro_f1", 0.9)],
    );
    let rn = p.train_run(&bare, &[("train_seconds", 2.0)]);
    let mut reg = p.registry();
    for r in [&rg, &rb, &rn] {
        reg.register(r, &opts("default")).unwrap();
    }
    // The first production version has nothing to beat; other aliases are never gated.
    reg.set_alias("default", "production", 1, &by("a")).unwrap();
    reg.set_alias("default", "staging", 2, &by("a")).unwrap();

    let err = reg
        .set_alias("default", "production", 2, &by("a"))
        .unwrap_err();
    assert!(err.is_gate_refusal());
    let msg = err.to_string();
    for part in [
        "v2",
        "v1",
        "eval.test.macro_f1",
        "0.6100",
        "0.9200",
        "--force",
    ] {
        assert!(msg.contains(part), "{part} missing: {msg}");
    }
    assert_eq!(
        reg.aliases("default").unwrap()["production"],
        1,
        "unchanged"
    );
    assert_eq!(reg.history("default", Some("production")).unwrap().len(), 1);

    // A named metric on which v2 is better passes.
    let o = AliasOptions {
        metric: Some("validation_macro_f1".into()),
        ..by("a")
    };
    let change = reg.set_alias("default", "production", 2, &o).unwrap();
    assert!(!change.forced);
    // Back to v1: the default metric (test macro-F1) is better on v1, so it passes.
    reg.set_alias("default", "production", 1, &by("a")).unwrap();

    // No metric in common: refused, naming what each has; --force records why.
    let err = reg
        .set_alias("default", "production", 3, &by("a"))
        .unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("no metric in common"), "{msg}");
    assert!(
        msg.contains("v1 has eval.test.macro_f1, validation_macro_f1"),
        "{msg}"
    );
    let forced = reg
        .set_alias(
            "default",
            "production",
            3,
            &AliasOptions {
                force: true,
                ..by("ops")
            },
        )
        .unwrap();
    assert!(forced.forced);
    let last = reg
        .history("default", Some("production"))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last, forced);
    assert!(
        last.reason
            .unwrap()
            .starts_with("forced past the gate: default v3")
    );
}

fn materialized_folders_are_verified_and_tampering_is_refused(mut p: Project) {
    let folder = p.model_folder("m");
    let run = p.train_run(&folder, &[]);
    let mut reg = p.registry();
    let v = reg.register(&run, &opts("default")).unwrap();

    let dir = reg.materialize(&v).unwrap();
    assert_eq!(dir, p.path().join(".taxon/registry/cache/default/1"));
    for f in ["model.json", "weights.bin", "metrics.json"] {
        assert_eq!(
            std::fs::read(dir.join(f)).unwrap(),
            std::fs::read(folder.join(f)).unwrap()
        );
    }
    assert_eq!(
        ModelDescription::read(&dir).unwrap().labels,
        ["sport", "tech"]
    );
    // The source folder may go away: the registry holds its own copy.
    std::fs::remove_dir_all(&folder).unwrap();
    assert_eq!(reg.materialize(&v).unwrap(), dir);

    // A tampered cache file is refused, naming the file and the folder to delete.
    std::fs::write(dir.join("weights.bin"), b"evil").unwrap();
    let err = reg.materialize(&v).unwrap_err().to_string();
    assert!(
        err.contains("weights.bin") && err.contains("Delete the folder"),
        "{err}"
    );
    assert!(err.contains(Md5Hex::of_bytes(b"evil").as_str()), "{err}");

    // A tampered object in the artifact store is refused on download, naming the file and
    // both hashes, and leaves no cache folder behind.
    std::fs::remove_dir_all(&dir).unwrap();
    let weights = v.files.iter().find(|f| f.name == "weights.bin").unwrap();
    let object = p.artifacts().join(weights.md5.cache_rel_path());
    std::fs::write(&object, b"tampered").unwrap();
    let err = reg.materialize(&v).unwrap_err().to_string();
    assert!(err.contains("file weights.bin"), "{err}");
    assert!(err.contains(weights.md5.as_str()), "{err}");
    assert!(
        err.contains(Md5Hex::of_bytes(b"tampered").as_str()),
        "{err}"
    );
    assert!(!dir.exists(), "no half folder");
    let leftovers: Vec<_> = std::fs::read_dir(dir.parent().unwrap()).unwrap().collect();
    assert!(
        leftovers.is_empty(),
        "temporary folder removed: {leftovers:?}"
    );
}

fn a_record_that_disagrees_with_model_json_is_refused(mut p: Project) {
    let folder = p.model_folder("m");
    let run = p.train_run(&folder, &[]);
    let mut reg = p.registry();
    let mut v = reg.register(&run, &opts("default")).unwrap();
    v.labels = vec!["spam".into(), "ham".into()];
    let err = reg.materialize(&v).unwrap_err().to_string();
    assert!(
        err.contains("model.json disagrees") && err.contains("labels"),
        "{err}"
    );
}

/// Env variable telling the child test where its project is.
const CHILD_DIR_ENV: &str = "TAXON_REGISTRY_TEST_CHILD_DIR";
const CHILD_PG_ENV: &str = "TAXON_REGISTRY_TEST_CHILD_PG";

/// Run only as a child of the test below: registers with the abort hook set, which kills the
/// process between the upload and the commit.
#[test]
#[ignore = "run by register_killed_after_upload_leaves_no_version"]
fn child_registers_and_is_killed_after_upload() {
    let Some(dir) = std::env::var_os(CHILD_DIR_ENV) else {
        return;
    };
    let mut p = Project::at(tempfile::TempDir::new_in(&dir).unwrap(), None);
    let db = std::env::var(CHILD_PG_ENV).map_or_else(|_| p.db(), PathBuf::from);
    let folder = p.model_folder("m");
    let run = p.train_run(&folder, &[("validation_accuracy", 0.9)]);
    let mut reg = Registry::open_with(&db, p.artifacts().to_str().unwrap()).unwrap();
    std::fs::write(Path::new(&dir).join("project"), p.path().to_str().unwrap()).unwrap();
    reg.register(&run, &opts("default")).unwrap();
    panic!("the abort hook did not fire");
}

#[test]
fn register_killed_after_upload_leaves_no_version_sqlite() {
    register_killed_after_upload_leaves_no_version(None);
}

#[test]
fn register_killed_after_upload_leaves_no_version_postgres() {
    if let Some(pg) = taxon_db::testing::postgres("killed_after_upload") {
        register_killed_after_upload_leaves_no_version(Some(&pg));
    }
}

fn register_killed_after_upload_leaves_no_version(pg: Option<&TestPostgres>) {
    let outer = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    if let Some(pg) = pg {
        child.env(CHILD_PG_ENV, &pg.url);
    }
    let status = child
        .args([
            "--exact",
            "tests::child_registers_and_is_killed_after_upload",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DIR_ENV, outer.path())
        .env(TEST_ABORT_AFTER_UPLOAD_ENV, "1")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(!status.success(), "the child must have been killed");
    let project = PathBuf::from(std::fs::read_to_string(outer.path().join("project")).unwrap());
    // The child's project folder outlived it (its guard never ran); `outer` removes it.
    let db = pg.map_or_else(
        || project.join(".taxon/registry.db"),
        |pg| PathBuf::from(&pg.url),
    );
    let artifacts = project.join("artifacts");
    let mut reg = Registry::open_with(&db, artifacts.to_str().unwrap()).unwrap();
    assert!(
        reg.models().unwrap().is_empty(),
        "no version after the kill"
    );
    let objects = walk(&artifacts.join("files/md5"));
    assert_eq!(objects.len(), 3, "the uploaded objects stay: {objects:?}");

    // Registering again reuses the objects and gets version 1.
    let runs = RunStore::open(&project.join(".taxon/runs.db")).unwrap();
    let id = runs.list(1).unwrap()[0].id.clone();
    let run = runs.get(&id).unwrap();
    let v = reg.register(&run, &opts("default")).unwrap();
    assert_eq!(v.version, 1);
    assert_eq!(walk(&artifacts.join("files/md5")).len(), 3);
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
