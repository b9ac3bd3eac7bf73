//! The deployment files (`Dockerfile`, `deploy/helm/taxon`) speak taxon's real command line:
//! every `TAXON_*` variable they set is one taxon reads (a flag's `env`, a name the code
//! reads, or a secret an alerts channel names with `url_env`/`password_env`), every `AWS_*`
//! one is one the S3 client reads, and every `--flag` a template passes exists on the command
//! it is passed to. A renamed flag or variable fails here, not in a cluster.
//! (`scripts/check-deploy.sh` validates the manifests themselves.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

fn help(args: &[&str]) -> String {
    let out = assert_cmd::Command::cargo_bin("taxon")
        .unwrap()
        .args(args)
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success(), "taxon {args:?} --help");
    String::from_utf8(out.stdout).unwrap()
}

/// Every maximal run of `[A-Z0-9_]` starting with `prefix` in `text`, except families named in
/// prose (`TAXON_SERVE_*`, `AWS_*`: ending in `_`).
fn names(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
            && !tail[..end].ends_with('_')
        {
            found.insert(tail[..end].to_string());
        }
        rest = &tail[end..];
    }
    found
}

/// The `--flags` passed as list items (`- --alias`) in a template.
fn flags(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- --"))
        .map(|f| format!("--{}", f.trim()))
        .collect()
}

fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path
                .file_name()
                .is_some_and(|n| n != "tests" && n != "target")
            {
                rust_sources(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

const CHART_FILES: &[&str] = &[
    "Dockerfile",
    "deploy/helm/taxon/values.yaml",
    "deploy/helm/taxon/values-staging.yaml",
    "deploy/helm/taxon/values-production.yaml",
    "deploy/helm/taxon/templates/_helpers.tpl",
    "deploy/helm/taxon/templates/configmap.yaml",
    "deploy/helm/taxon/templates/deployment.yaml",
    "deploy/helm/taxon/templates/batch-job.yaml",
    "deploy/helm/taxon/templates/retrain-cronjob.yaml",
];

#[test]
fn deploy_files_set_only_variables_taxon_reads() {
    let texts: Vec<(&str, String)> = CHART_FILES.iter().map(|f| (*f, read(f))).collect();
    let mut code = String::new();
    rust_sources(&root().join("crates"), &mut code);
    let helps = [
        help(&["serve"]),
        help(&["predict"]),
        help(&["registry", "pull"]),
    ]
    .join("\n");
    // Secrets the alerts config names for its channels (values files: `url_env: NAME`).
    let channel_secrets: BTreeSet<String> = texts
        .iter()
        .flat_map(|(_, t)| t.lines())
        .filter_map(|l| {
            let l = l.trim();
            l.strip_prefix("url_env:")
                .or_else(|| l.strip_prefix("password_env:"))
        })
        .map(|v| v.trim().to_string())
        .collect();
    assert!(channel_secrets.contains("TAXON_SLACK_WEBHOOK"));

    let mut checked = 0;
    for (file, text) in &texts {
        for name in names(text, "TAXON_") {
            let known = helps.contains(&format!("[env: {name}="))
                || helps.contains(&format!("[env: {name}]"))
                || code.contains(&format!("\"{name}\""))
                || channel_secrets.contains(&name);
            assert!(known, "{file}: {name} is not a variable taxon reads");
            checked += 1;
        }
        for name in names(text, "AWS_") {
            assert!(
                read("crates/registry/src/artifacts.rs").contains(&format!("\"{name}\"")),
                "{file}: {name} is not a variable the S3 client reads"
            );
            checked += 1;
        }
    }
    assert!(
        checked > 20,
        "only {checked} variables found: the scan is broken"
    );
}

#[test]
fn deploy_files_pass_only_flags_that_exist() {
    let cases = [
        (
            "deploy/helm/taxon/templates/deployment.yaml",
            vec![help(&["serve"])],
        ),
        (
            "deploy/helm/taxon/templates/batch-job.yaml",
            vec![help(&["predict"]), help(&["registry", "pull"])],
        ),
    ];
    for (file, helps) in cases {
        let used = flags(&read(file));
        assert!(
            !used.is_empty(),
            "{file}: no flags found: the scan is broken"
        );
        for flag in used {
            assert!(
                helps.iter().any(|h| h.contains(&format!("{flag} "))),
                "{file}: {flag} is not a flag of the command it is passed to"
            );
        }
    }
    // The image's default command: `taxon serve --model /opt/taxon/model`.
    let dockerfile = read("Dockerfile");
    assert!(dockerfile.contains(r#"ENTRYPOINT ["/usr/local/bin/taxon", "serve"]"#));
    assert!(dockerfile.contains(r#"CMD ["--model", "/opt/taxon/model"]"#));
    assert!(help(&["serve"]).contains("--model <DIR>"));
}

/// The chart's `alerts.config` of each values file is a config `taxon serve --alerts` loads:
/// `taxon alerts test` loads it (exit 2 if it does not) and tries every channel, here all
/// pointed at a closed local port so each fails fast (exit 1, every channel named).
#[test]
fn the_charts_alerts_configs_load() {
    let dir = tempfile::tempdir().unwrap();
    for file in [
        "deploy/helm/taxon/values.yaml",
        "deploy/helm/taxon/values-production.yaml",
    ] {
        let values: serde_yaml_ng::Value = serde_yaml_ng::from_str(&read(file)).unwrap();
        let mut config = values["alerts"]["config"].clone();
        let channels = config["channels"]
            .as_mapping_mut()
            .unwrap_or_else(|| panic!("{file}: alerts.config has no channels"));
        let names: Vec<String> = channels
            .keys()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        for (_, channel) in channels.iter_mut() {
            if channel.get("smtp_host").is_some() {
                channel["smtp_host"] = "127.0.0.1".into();
                channel["smtp_port"] = 9.into();
            }
        }
        let path = dir.path().join("alerts.yaml");
        std::fs::write(&path, serde_yaml_ng::to_string(&config).unwrap()).unwrap();
        let out = assert_cmd::Command::cargo_bin("taxon")
            .unwrap()
            .current_dir(dir.path())
            .args(["alerts", "test", "--config"])
            .arg(&path)
            .env("TAXON_SLACK_WEBHOOK", "http://127.0.0.1:9/hook")
            .env("TAXON_SMTP_PASSWORD", "not-a-password")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{file}: alerts.config did not load: {}{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        for name in names {
            assert!(
                stdout.contains(&name),
                "{file}: channel {name} not tried: {stdout}"
            );
        }
    }
}
