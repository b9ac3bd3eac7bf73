//! `taxon pipeline init`: the standard text-classification pipeline for a user's own data,
//! as plain DVC files (`dvc.yaml`, `params.yaml`) plus a starting expectation suite. Every
//! stage is a `taxon` command a user could type; `dvc repro` runs the same files.

/// Where the user's data is.
#[derive(Clone, Debug)]
pub enum DataLayout {
    /// A folder with one sub-folder of text files per label: a `prepare` stage splits it.
    LabelFolders { root: String },
    /// A train file and a test file already split (JSONL, CSV/TSV or Parquet).
    Split { train: String, test: String },
}

/// The files `init` writes, as text.
#[derive(Clone, Debug)]
pub struct InitFiles {
    pub dvc_yaml: String,
    pub params_yaml: String,
    pub expectations_yaml: String,
}

/// YAML-quotes `s` when it needs it.
fn q(s: &str) -> String {
    let plain = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
        && !s.starts_with(['-', '.']);
    if plain {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "''"))
    }
}

/// Shell-quotes `s` when it needs it.
fn sh(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
    {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The standard pipeline: (prepare,) validate, train, evaluate, register (and promote
/// through the gate).
pub fn standard(layout: &DataLayout, model_name: &str, model_type: &str) -> InitFiles {
    let mut dvc = String::from(
        "# The standard text-classification pipeline (`taxon pipeline init`). Run it with\n\
         # `taxon pipeline run` (or `dvc repro`): each stage runs only when something it reads\n\
         # (deps, params in params.yaml, its command) changed since dvc.lock recorded it.\n\
         stages:\n",
    );
    let mut params = String::from(
        "# Parameters of dvc.yaml. Change one and `taxon pipeline run` re-runs exactly the\n\
         # stages that read it (`taxon pipeline run --dry-run` says which, and why).\n",
    );
    let (train, test) = match layout {
        DataLayout::LabelFolders { root } => {
            params.push_str(&format!(
                "data:\n  # A folder with one sub-folder of text files per label.\n  source: {}\n  test_ratio: 0.2\n  seed: 42\n",
                q(root)
            ));
            dvc.push_str(
                "  prepare:\n\
                 \x20   desc: Stratified, seeded train/test split of the label folders into JSONL.\n\
                 \x20   cmd: taxon data import \"${data.source}\" --out data/prepared --test-ratio ${data.test_ratio} --seed ${data.seed}\n\
                 \x20   deps:\n\
                 \x20   - ${data.source}\n\
                 \x20   params:\n\
                 \x20   - data\n\
                 \x20   outs:\n\
                 \x20   - data/prepared\n",
            );
            (
                "data/prepared/train.jsonl".to_string(),
                "data/prepared/test.jsonl".to_string(),
            )
        }
        DataLayout::Split { train, test } => (train.clone(), test.clone()),
    };
    let retrain_into = match layout {
        DataLayout::LabelFolders { root } => format!(
            "  # Fresh labels from the prediction log become files in the label folders (the\n  # prepare stage splits them like the rest).\n  into: {}\n",
            q(root)
        ),
        DataLayout::Split { train, test } => format!(
            "  # Fresh labels from the prediction log are appended here; test_share of them to\n  # the test file, so the new model is also judged on fresh labels.\n  into: {}\n  test_into: {}\n  test_share: 0.2\n",
            q(train),
            q(test)
        ),
    };
    params.push_str(&format!(
        "retrain:\n  # `taxon pipeline retrain`: at least min_feedback fresh labels, at most one\n  # retraining per cooldown_minutes.\n{retrain_into}  min_feedback: 50\n  cooldown_minutes: 60\n"
    ));
    params.push_str(&format!(
        "train:\n  # linear (the default), lstm or bert; `taxon train --help` lists the rest.\n  model_type: {}\n  seed: 42\n  threads: 2\n\
         register:\n  # The registry model this pipeline registers, and the alias it moves through the\n  # promotion gate (refused when the new version evaluates worse).\n  name: {}\n  alias: production\n",
        q(model_type),
        q(model_name)
    ));
    let (tr, te) = (sh(&train), sh(&test));
    dvc.push_str(&format!(
        "  validate:\n\
         \x20   desc: The expectation suite on the training split (leakage checked against the test split).\n\
         \x20   cmd: mkdir -p reports && taxon --json data validate {tr} --test {te} --expectations expectations.yaml > reports/validation.json\n\
         \x20   deps:\n\
         \x20   - {train_q}\n\
         \x20   - {test_q}\n\
         \x20   - expectations.yaml\n\
         \x20   metrics:\n\
         \x20   - reports/validation.json:\n\
         \x20       cache: false\n\
         \x20 train:\n\
         \x20   desc: Train the model on the training split (after it validated).\n\
         \x20   cmd: taxon train --model-type ${{train.model_type}} --data {tr} --output models/model --seed ${{train.seed}} --threads ${{train.threads}}\n\
         \x20   deps:\n\
         \x20   - {train_q}\n\
         \x20   - reports/validation.json\n\
         \x20   params:\n\
         \x20   - train\n\
         \x20   outs:\n\
         \x20   - models/model\n\
         \x20 evaluate:\n\
         \x20   desc: Accuracy, macro-F1, per-class scores and calibration on the test split.\n\
         \x20   cmd: mkdir -p reports && taxon --json eval models/model {te} --report reports/eval.html > reports/eval.json\n\
         \x20   deps:\n\
         \x20   - models/model\n\
         \x20   - {test_q}\n\
         \x20   metrics:\n\
         \x20   - reports/eval.json:\n\
         \x20       cache: false\n\
         \x20   outs:\n\
         \x20   - reports/eval.html:\n\
         \x20       cache: false\n\
         \x20 register:\n\
         \x20   desc: Register the trained run in the model registry, then move the alias through the\n\
         \x20     promotion gate (a refusal is recorded in reports/promotion.json, not an error).\n\
         \x20   cmd: taxon registry register latest --name ${{register.name}} --allow-duplicate --description \"$TAXON_PIPELINE_CAUSE\" && (taxon --json registry alias set ${{register.alias}} latest --name ${{register.name}} > reports/promotion.json || [ $? -eq 1 ])\n\
         \x20   deps:\n\
         \x20   - models/model\n\
         \x20   - reports/eval.json\n\
         \x20   params:\n\
         \x20   - register\n\
         \x20   metrics:\n\
         \x20   - reports/promotion.json:\n\
         \x20       cache: false\n",
        train_q = q(&train),
        test_q = q(&test),
    ));
    InitFiles {
        dvc_yaml: dvc,
        params_yaml: params,
        expectations_yaml: EXPECTATIONS.to_string(),
    }
}

/// A starting suite that holds for any sound text-classification split; tighten it to your
/// data (label set, lengths, row counts) as `examples/expectations.yaml` does for BBC.
const EXPECTATIONS: &str = "\
# Expectations for the training split (`taxon data validate`; Great Expectations' names).
# A starting suite written by `taxon pipeline init`: it holds for any sound split. Tighten it
# to your data: the label set (expect_column_values_to_be_in_set), each label's share of the
# rows (expect_column_value_shares_to_be_between), text lengths, row counts;
# examples/expectations.yaml in the taxon repository does so for BBC News.
expectation_suite_name: pipeline_train
text_field: text
label_field: label
expectations:
  - expectation_type: expect_column_to_exist
    kwargs: {column: text}
  - expectation_type: expect_column_to_exist
    kwargs: {column: label}
  # No missing, empty or unreadable text or label.
  - expectation_type: expect_column_values_to_not_be_null
    kwargs: {column: text}
  - expectation_type: expect_column_values_to_not_be_null
    kwargs: {column: label}
  - expectation_type: expect_column_value_lengths_to_be_between
    kwargs: {column: text, min_value: 1, max_value: 1000000}
  # At most 10% repeated texts, and at most 10% of test texts seen in training.
  - expectation_type: expect_column_values_to_be_unique
    kwargs: {column: text, mostly: 0.90}
  - expectation_type: expect_train_test_overlap_to_be_at_most
    kwargs: {max_share: 0.10}
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_standard_pipeline_parses_and_chains_its_stages() {
        let dir = tempfile::tempdir().unwrap();
        let f = standard(
            &DataLayout::LabelFolders {
                root: "raw/my corpus".into(),
            },
            "news",
            "linear",
        );
        std::fs::write(dir.path().join("dvc.yaml"), &f.dvc_yaml).unwrap();
        std::fs::write(dir.path().join("params.yaml"), &f.params_yaml).unwrap();
        let p = crate::Pipeline::load(&dir.path().join("dvc.yaml")).unwrap();
        let d = crate::Dag::build(&p).unwrap();
        assert_eq!(
            crate::dag::names(&p, &d.order),
            ["prepare", "validate", "train", "evaluate", "register"]
        );
        assert_eq!(p.stages[0].deps, ["raw/my corpus"]);
        assert!(p.stages[2].cmd[0].contains("--model-type linear"));
        let _: serde_yaml_ng::Value = serde_yaml_ng::from_str(&f.expectations_yaml).unwrap();
    }
}
