//! Fills a project's stores with a long history for `bench/ui.sh`: RUNS finished train runs
//! (through the run store's API, each with params, final metrics and a 5-epoch history) and
//! ALIAS_CHANGES rows of alias history for model `default` (bulk-inserted with SQL into the
//! registry's own `alias_history` table in one transaction, as `alias set` would write them
//! one by one: a hundred thousand single-row transactions would take minutes and measure
//! nothing the pages do). The bench then trains, registers and promotes a real model
//! `default`, whose changes come last in the history, as they would.
//!
//! With PREDICTIONS, it also writes a prediction log to PROJECT/log through taxon-monitor's
//! own `LogWriter`: that many predictions of model `default` v1 over the last 24 hours (labels
//! `sport` and `tech`, their confidence falling in the second half, as a drifting input
//! would), and a feedback label for every tenth.
//!
//! usage: ui_fill PROJECT RUNS ALIAS_CHANGES [PREDICTIONS]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use taxon_track::{MetricPoint, NewRun, RunEnd, RunStore};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (project, runs, changes, predictions) = match args.as_slice() {
        [_, p, r, c] => (p, r, c, "0"),
        [_, p, r, c, n] => (p, r, c, n.as_str()),
        _ => return Err("usage: ui_fill PROJECT RUNS ALIAS_CHANGES [PREDICTIONS]".into()),
    };
    let project = PathBuf::from(project);
    let (runs, changes): (usize, usize) = (runs.parse()?, changes.parse()?);
    let predictions: usize = predictions.parse()?;

    let t = Instant::now();
    let mut store = RunStore::open_default(&project)?;
    let types = ["linear", "lstm", "bert"];
    for i in 0..runs {
        let id = store.create_run(&NewRun {
            name: format!("sweep {i}"),
            kind: "train".into(),
            model_type: Some(types[i % 3].into()),
            data_path: Some("train.jsonl".into()),
            data_version: Some(format!("{:032x}", i % 7)),
            params: BTreeMap::from([
                ("lr".to_string(), format!("{}", 0.001 * (1 + i % 10) as f64)),
                ("epochs".to_string(), "5".to_string()),
                ("seed".to_string(), i.to_string()),
            ]),
            ..Default::default()
        })?;
        let acc = 0.80 + ((i * 7919) % 1000) as f64 / 5000.0;
        let now = chrono::Utc::now();
        let history: Vec<MetricPoint> = (1..=5)
            .flat_map(|step| {
                [
                    ("loss", 1.0 / step as f64),
                    ("val_accuracy", acc - 0.02 * (5 - step) as f64),
                ]
                .map(|(key, value)| MetricPoint {
                    key: key.into(),
                    step,
                    value,
                    timestamp: now,
                })
            })
            .collect();
        store.log_metrics(&id, &history)?;
        store.finish(
            &id,
            &RunEnd {
                metrics: BTreeMap::from([
                    ("accuracy".to_string(), acc),
                    ("macro_f1".to_string(), acc - 0.01),
                    ("loss".to_string(), 0.2),
                    ("train_seconds".to_string(), 1.0 + (i % 13) as f64),
                ]),
                ..Default::default()
            },
        )?;
    }
    eprintln!("{runs} runs in {:.1} s", t.elapsed().as_secs_f64());

    let t = Instant::now();
    // Opening the registry creates its schema (and applies its migrations).
    drop(taxon_registry::Registry::open(&project)?);
    let db = taxon_registry::default_db_path(&project);
    let mut conn = rusqlite::Connection::open(&db)?;
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare(
            "INSERT INTO alias_history (name, alias, from_version, to_version, actor, at_us,
                forced, reason) VALUES ('default', ?1, 1, 1, 'bench', ?2, 0, ?3)",
        )?;
        // Spread over the last year, oldest first, before the real changes.
        let start = chrono::Utc::now().timestamp_micros() - 366 * 86_400 * 1_000_000;
        for i in 0..changes {
            let alias = ["staging", "canary", "shadow"][i % 3];
            insert.execute(rusqlite::params![
                alias,
                start + i as i64 * 300_000_000,
                format!("bench change {i}")
            ])?;
        }
    }
    tx.commit()?;
    eprintln!(
        "{changes} alias changes in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if predictions > 0 {
        write_log(&project.join("log"), predictions)?;
    }
    Ok(())
}

/// `n` predictions (and a feedback label for every tenth) over the last 24 hours.
fn write_log(dir: &std::path::Path, n: usize) -> Result<(), Box<dyn std::error::Error>> {
    use taxon_monitor::log::{FeedbackRecord, LogOptions, LogRecord, LogWriter, PredictionRecord};
    let t = Instant::now();
    let mut w = LogWriter::start(LogOptions::new(dir.to_path_buf()))?;
    let end = chrono::Utc::now().timestamp() as f64;
    let start = end - 86_400.0;
    let send = |r: LogRecord| {
        // The writer's queue is bounded: wait for it rather than drop.
        while !w.log(r.clone()) {
            w.flush();
        }
    };
    for i in 0..n {
        let time = start + 86_400.0 * i as f64 / n as f64;
        let label = ["sport", "tech"][i % 2];
        let late = i >= n / 2;
        let top: f32 = if late {
            0.55 + (i % 7) as f32 * 0.03
        } else {
            0.8 + (i % 5) as f32 * 0.04
        };
        let scores = ["sport", "tech"]
            .iter()
            .map(|l| (l.to_string(), if *l == label { top } else { 1.0 - top }))
            .collect();
        let id = format!("r{i}");
        send(LogRecord::Prediction(PredictionRecord {
            time,
            request_id: id.clone(),
            model: "default".into(),
            version: "v1".into(),
            label: label.into(),
            scores,
            latency_ms: 0.2 + (i % 11) as f64 * 0.05,
            tokens: 8 + i % 30,
            unknown_share: Some(if late { 0.3 } else { 0.02 }),
            text: None,
            text_fernet: None,
        }));
        if i % 10 == 0 {
            let truth = if late && i % 30 == 0 {
                ["tech", "sport"][i % 2]
            } else {
                label
            };
            send(LogRecord::Feedback(FeedbackRecord {
                time: time + 1.0,
                request_id: id,
                model: "default".into(),
                version: "v1".into(),
                predicted: label.into(),
                label: truth.into(),
            }));
        }
    }
    w.close();
    eprintln!(
        "{n} predictions logged in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    Ok(())
}
