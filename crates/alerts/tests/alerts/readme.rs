//! The README's `alerts.yaml` example loads as written (with its variables set), so the
//! documented file cannot drift from what the server accepts.

use std::path::Path;

use taxon_alerts::{AlertsConfig, Channel, Condition};

/// The first ```yaml block under "### Embedded alerts".
fn readme_example() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md");
    let readme = std::fs::read_to_string(&path).unwrap();
    let section = readme
        .split_once("### Embedded alerts")
        .expect("README has an Embedded alerts section")
        .1;
    let block = section.split_once("```yaml\n").expect("a yaml block").1;
    block
        .split_once("\n```")
        .expect("a closed block")
        .0
        .to_string()
}

#[test]
fn the_readme_example_loads_with_every_channel_type_and_condition() {
    let text = readme_example();
    let c = AlertsConfig::parse(&text, Path::new("README.md"), |name| match name {
        "TAXON_SLACK_WEBHOOK" => Some("https://hooks.slack.invalid/T0/B0/x".into()),
        "TAXON_SMTP_PASSWORD" => Some("password".into()),
        _ => None,
    })
    .unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<&str> = c.channels.values().map(Channel::kind).collect();
    for kind in ["slack", "webhook", "email"] {
        assert!(kinds.contains(&kind), "{kind} missing: {kinds:?}");
    }
    for condition in Condition::ALL {
        assert!(
            c.rules.iter().any(|r| r.condition == condition),
            "{condition} has no example rule"
        );
    }
    let defaults = taxon_alerts::Settings::default();
    assert_eq!(
        c.settings, defaults,
        "the example's settings are the defaults"
    );
}
