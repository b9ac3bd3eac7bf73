//! DVC's templating: `${key}` in a stage's strings replaced from the variables in scope
//! (`params.yaml`, `vars`, and `item`/`key` inside `foreach`). A string that is one `${...}`
//! keeps the value's type (a list stays a list); inside a longer string the value is
//! rendered as DVC renders it (booleans `true`/`false`, lists space-separated). `\${` is a
//! literal `${`.

use serde_yaml_ng::Value;

use crate::params::lookup;

/// Replaces every `${...}` in `s` from `vars`. The error says which name is missing or why it
/// cannot go into a string.
pub fn resolve(s: &str, vars: &Value) -> Result<Value, String> {
    let trimmed = s.trim();
    if let Some(inner) = whole_reference(trimmed) {
        return lookup(vars, inner).cloned().ok_or_else(|| {
            format!("`${{{inner}}}` is not defined (params.yaml, vars or foreach)")
        });
    }
    resolve_str(s, vars).map(Value::String)
}

/// [`resolve`] for a string context: the result is always text.
pub fn resolve_str(s: &str, vars: &Value) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find("${") {
        if rest[..pos].ends_with('\\') {
            out.push_str(&rest[..pos - 1]);
            out.push_str("${");
            rest = &rest[pos + 2..];
            continue;
        }
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed `${{` in {s:?}"))?;
        let name = after[..end].trim();
        let value = lookup(vars, name).ok_or_else(|| {
            format!("`${{{name}}}` is not defined (params.yaml, vars or foreach)")
        })?;
        out.push_str(&render(value).map_err(|why| format!("`${{{name}}}` {why}"))?);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// `${name}` alone (no text around it, one reference): the name.
fn whole_reference(s: &str) -> Option<&str> {
    let inner = s.strip_prefix("${")?.strip_suffix('}')?;
    (!inner.contains("${") && !inner.contains('}')).then_some(inner.trim())
}

/// A value as it appears inside a string.
fn render(v: &Value) -> Result<String, String> {
    Ok(match v {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::Null => "None".to_string(),
        Value::Sequence(items) => items
            .iter()
            .map(render)
            .collect::<Result<Vec<_>, _>>()?
            .join(" "),
        Value::Mapping(_) => return Err("is a mapping and cannot be put into a string".into()),
        Value::Tagged(t) => render(&t.value)?,
    })
}

/// Resolves every string inside `v` (keys stay as written).
pub fn resolve_tree(v: &Value, vars: &Value) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => resolve(s, vars)?,
        Value::Sequence(items) => Value::Sequence(
            items
                .iter()
                .map(|i| resolve_tree(i, vars))
                .collect::<Result<_, _>>()?,
        ),
        Value::Mapping(m) => {
            let mut out = serde_yaml_ng::Mapping::new();
            for (k, val) in m {
                let k = match k {
                    Value::String(s) => Value::String(resolve_str(s, vars)?),
                    other => other.clone(),
                };
                out.insert(k, resolve_tree(val, vars)?);
            }
            Value::Mapping(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> Value {
        serde_yaml_ng::from_str(
            "train: {epochs: 3, lr: 0.1, fast: true, sizes: [8, 16]}\nname: bbc\nm: {a: 1}\n",
        )
        .unwrap()
    }

    #[test]
    fn references_in_text_are_rendered_as_dvc_does() {
        let v = vars();
        assert_eq!(
            resolve_str(
                "train --epochs ${train.epochs} --lr ${ train.lr } ${train.fast}",
                &v
            )
            .unwrap(),
            "train --epochs 3 --lr 0.1 true"
        );
        assert_eq!(resolve_str("x ${train.sizes}", &v).unwrap(), "x 8 16");
        assert_eq!(
            resolve_str(r"echo \${HOME} ${name}", &v).unwrap(),
            "echo ${HOME} bbc"
        );
    }

    #[test]
    fn a_whole_reference_keeps_its_type() {
        let v = vars();
        assert_eq!(
            resolve("${train.sizes}", &v).unwrap(),
            serde_yaml_ng::from_str::<Value>("[8, 16]").unwrap()
        );
    }

    #[test]
    fn missing_names_and_mappings_in_text_are_errors() {
        let v = vars();
        let e = resolve_str("a ${train.nope} b", &v).unwrap_err();
        assert!(e.contains("train.nope"), "{e}");
        let e = resolve_str("a ${m} b", &v).unwrap_err();
        assert!(e.contains("mapping"), "{e}");
        assert!(
            resolve_str("a ${name", &v)
                .unwrap_err()
                .contains("unclosed")
        );
    }
}
