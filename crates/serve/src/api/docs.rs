//! `GET /docs`: a self-contained HTML page rendered by the server from its own OpenAPI
//! document: every endpoint with its method, summary, description, request body and response
//! schemas, an example `curl` line, and every schema as a table. No JavaScript, no external
//! CSS or fonts, so it works offline.

use std::fmt::Write;
use std::sync::OnceLock;

use axum::body::Body;
use axum::response::Response;
use bytes::Bytes;
use http::{HeaderValue, header};
use serde_json::{Map, Value};

use super::openapi::document;

const METHODS: [&str; 8] = [
    "get", "post", "put", "patch", "delete", "head", "options", "trace",
];

/// Human documentation of this API, rendered from the OpenAPI document.
#[utoipa::path(
    get,
    path = "/docs",
    tag = "operations",
    responses((status = 200, description = "The API documentation as an HTML page", content_type = "text/html", body = String))
)]
pub async fn docs_page() -> Response {
    static PAGE: OnceLock<Bytes> = OnceLock::new();
    let page = PAGE.get_or_init(|| {
        let doc = serde_json::to_value(document()).unwrap_or(Value::Null);
        Bytes::from(render(&doc))
    });
    let mut response = Response::new(Body::from(page.clone()));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    response
}

/// Renders an OpenAPI 3 document (as JSON) to a standalone HTML page.
pub fn render(doc: &Value) -> String {
    let title = doc
        .pointer("/info/title")
        .and_then(Value::as_str)
        .unwrap_or("API");
    let version = doc
        .pointer("/info/version")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = String::with_capacity(32 * 1024);
    let _ = write!(
        out,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{t}</title><style>{STYLE}</style></head><body><main>\
         <h1>{t} <small>{v}</small></h1>",
        t = esc(title),
        v = esc(version),
    );
    if let Some(d) = doc.pointer("/info/description").and_then(Value::as_str) {
        let _ = write!(out, "<p>{}</p>", esc(d));
    }
    let openapi = doc.get("openapi").and_then(Value::as_str).unwrap_or("3");
    let _ = write!(
        out,
        "<p class=\"note\">Examples use <code>TAXON_URL</code>, the server's address \
         (e.g. <code>export TAXON_URL=http://127.0.0.1:8000</code>). Machine-readable: \
         <a href=\"/openapi.json\">/openapi.json</a> (OpenAPI {}).</p>",
        esc(openapi)
    );
    let operations = operations(doc);
    out.push_str("<nav><h2>Endpoints</h2><ul>");
    for op in &operations {
        let _ = write!(
            out,
            "<li><a href=\"#{id}\"><span class=\"m {m}\">{M}</span> <code>{p}</code></a> {s}</li>",
            id = op.anchor(),
            m = op.method,
            M = op.method.to_ascii_uppercase(),
            p = esc(op.path),
            s = esc(op.summary()),
        );
    }
    out.push_str("</ul></nav>");
    for op in &operations {
        render_operation(&mut out, doc, op);
    }
    render_schemas(&mut out, doc);
    out.push_str("</main></body></html>\n");
    out
}

/// One method on one path.
struct Operation<'a> {
    path: &'a str,
    method: &'a str,
    spec: &'a Value,
}

impl Operation<'_> {
    fn anchor(&self) -> String {
        let mut id = format!("{}-{}", self.method, self.path);
        id.retain(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        id
    }

    fn summary(&self) -> &str {
        self.spec
            .get("summary")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
}

fn operations(doc: &Value) -> Vec<Operation<'_>> {
    let mut ops = Vec::new();
    if let Some(paths) = doc.get("paths").and_then(Value::as_object) {
        for (path, item) in paths {
            for method in METHODS {
                if let Some(spec) = item.get(method) {
                    ops.push(Operation { path, method, spec });
                }
            }
        }
    }
    ops
}

fn render_operation(out: &mut String, doc: &Value, op: &Operation<'_>) {
    let _ = write!(
        out,
        "<section id=\"{id}\"><h2><span class=\"m {m}\">{M}</span> <code>{p}</code></h2>",
        id = op.anchor(),
        m = op.method,
        M = op.method.to_ascii_uppercase(),
        p = esc(op.path),
    );
    if !op.summary().is_empty() {
        let _ = write!(out, "<p class=\"summary\">{}</p>", esc(op.summary()));
    }
    if let Some(d) = op.spec.get("description").and_then(Value::as_str) {
        for para in d.split("\n\n") {
            let _ = write!(out, "<p>{}</p>", esc(para));
        }
    }
    let body = op
        .spec
        .pointer("/requestBody/content")
        .and_then(Value::as_object);
    let mut example_body = None;
    if let Some(content) = body {
        out.push_str("<h3>Request body</h3>");
        for (media, m) in content {
            let schema = m.get("schema").unwrap_or(&Value::Null);
            let _ = write!(
                out,
                "<p><code>{}</code>: {}</p>",
                esc(media),
                type_html(schema)
            );
            let example = example_of(doc, schema, 0);
            let _ = write!(
                out,
                "<pre>{}</pre>",
                esc(&serde_json::to_string_pretty(&example).unwrap_or_default())
            );
            example_body.get_or_insert((media.clone(), example));
        }
    }
    if let Some(responses) = op.spec.get("responses").and_then(Value::as_object) {
        out.push_str(
            "<h3>Responses</h3><table><tr><th>status</th><th>description</th><th>body</th></tr>",
        );
        for (status, r) in responses {
            let description = r.get("description").and_then(Value::as_str).unwrap_or("");
            let body = r
                .get("content")
                .and_then(Value::as_object)
                .map(|c| {
                    c.iter()
                        .map(|(media, m)| {
                            format!(
                                "<code>{}</code> {}",
                                esc(media),
                                m.get("schema").map(type_html).unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("<br>")
                })
                .unwrap_or_default();
            let _ = write!(
                out,
                "<tr><td>{}</td><td>{}</td><td>{body}</td></tr>",
                esc(status),
                esc(description)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("<h3>Example</h3><pre>");
    out.push_str(&esc(&curl_line(op, example_body.as_ref())));
    out.push_str("</pre></section>");
}

/// `curl -s -X POST "$TAXON_URL/path" -H 'Content-Type: ...' -d '{...}'`.
fn curl_line(op: &Operation<'_>, body: Option<&(String, Value)>) -> String {
    let mut line = String::from("curl -s");
    if op.method != "get" {
        let _ = write!(line, " -X {}", op.method.to_ascii_uppercase());
    }
    let _ = write!(line, " \"$TAXON_URL{}\"", op.path);
    if let Some((media, example)) = body {
        let json = serde_json::to_string(example).unwrap_or_default();
        let _ = write!(
            line,
            " \\\n  -H 'Content-Type: {media}' \\\n  -d '{}'",
            json.replace('\'', "'\\''")
        );
    }
    line
}

fn render_schemas(out: &mut String, doc: &Value) {
    let Some(schemas) = doc
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    else {
        return;
    };
    out.push_str("<section><h2>Schemas</h2>");
    for (name, schema) in schemas {
        let _ = write!(out, "<h3 id=\"schema-{n}\">{n}</h3>", n = esc(name));
        if let Some(d) = schema.get("description").and_then(Value::as_str) {
            let _ = write!(out, "<p>{}</p>", esc(d));
        }
        let Some(props) = schema.get("properties").and_then(Value::as_object) else {
            let _ = write!(out, "<p>{}</p>", type_html(schema));
            continue;
        };
        let required: Vec<&str> = schema
            .get("required")
            .and_then(Value::as_array)
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        out.push_str(
            "<table><tr><th>field</th><th>type</th><th>required</th><th>description</th></tr>",
        );
        for (field, p) in props {
            let description = p.get("description").and_then(Value::as_str).unwrap_or("");
            let _ = write!(
                out,
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(field),
                type_html(p),
                if required.contains(&field.as_str()) {
                    "yes"
                } else {
                    "no"
                },
                esc(description)
            );
        }
        out.push_str("</table>");
    }
    out.push_str("</section>");
}

/// A schema's type in words, with links to named schemas.
fn type_html(schema: &Value) -> String {
    type_words(schema, 0)
}

fn type_words(schema: &Value, depth: usize) -> String {
    if depth > 8 {
        return "...".into();
    }
    let Some(obj) = schema.as_object() else {
        return "any".into();
    };
    if let Some(name) = obj.get("$ref").and_then(Value::as_str).and_then(ref_name) {
        return format!("<a href=\"#schema-{n}\">{n}</a>", n = esc(name));
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = obj.get(key).and_then(Value::as_array) {
            let sep = if key == "allOf" { " and " } else { " | " };
            return parts
                .iter()
                .map(|p| type_words(p, depth + 1))
                .collect::<Vec<_>>()
                .join(sep);
        }
    }
    let types: Vec<&str> = match obj.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if types.is_empty() {
        return "any".into();
    }
    types
        .iter()
        .map(|t| match *t {
            "array" => format!(
                "array of {}",
                obj.get("items")
                    .map_or_else(|| "any".into(), |i| type_words(i, depth + 1))
            ),
            "object" => match obj.get("additionalProperties") {
                Some(v @ Value::Object(_)) => {
                    format!("map of string to {}", type_words(v, depth + 1))
                }
                _ => "object".into(),
            },
            other => match obj.get("format").and_then(Value::as_str) {
                Some(f) => format!("{} ({})", esc(other), esc(f)),
                None => esc(other),
            },
        })
        .collect::<Vec<_>>()
        .join(" | ")
}

fn ref_name(r: &str) -> Option<&str> {
    r.strip_prefix("#/components/schemas/")
}

/// An example value for `schema`: its own example, else one built from its properties.
fn example_of(doc: &Value, schema: &Value, depth: usize) -> Value {
    if depth > 8 {
        return Value::Null;
    }
    let Some(obj) = schema.as_object() else {
        return Value::Null;
    };
    if let Some(e) = obj.get("example") {
        return e.clone();
    }
    if let Some(e) = obj
        .get("examples")
        .and_then(Value::as_array)
        .and_then(|a| a.first())
    {
        return e.clone();
    }
    if let Some(name) = obj.get("$ref").and_then(Value::as_str).and_then(ref_name) {
        let target = doc
            .pointer(&format!("/components/schemas/{name}"))
            .unwrap_or(&Value::Null);
        return example_of(doc, target, depth + 1);
    }
    for key in ["oneOf", "anyOf", "allOf"] {
        if let Some(parts) = obj.get(key).and_then(Value::as_array) {
            return parts
                .iter()
                .map(|p| example_of(doc, p, depth + 1))
                .find(|v| !v.is_null())
                .unwrap_or(Value::Null);
        }
    }
    if let Some(props) = obj.get("properties").and_then(Value::as_object) {
        let map: Map<String, Value> = props
            .iter()
            .map(|(k, p)| (k.clone(), example_of(doc, p, depth + 1)))
            .collect();
        return Value::Object(map);
    }
    let first_type = match obj.get("type") {
        Some(Value::String(t)) => Some(t.as_str()),
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).find(|t| *t != "null"),
        _ => None,
    };
    match first_type {
        Some("string") => Value::String("string".into()),
        Some("integer") => Value::from(0),
        Some("number") => Value::from(0.0),
        Some("boolean") => Value::Bool(false),
        Some("array") => Value::Array(vec![example_of(
            doc,
            obj.get("items").unwrap_or(&Value::Null),
            depth + 1,
        )]),
        Some("object") => Value::Object(Map::new()),
        _ => Value::Null,
    }
}

/// HTML-escapes text.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:0;background:#fafafa;color:#222}\
main{max-width:60rem;margin:0 auto;padding:1rem 2rem}\
h1 small{font-size:.5em;color:#777}\
section{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.5rem 1.2rem;margin:1rem 0}\
code,pre{font-family:ui-monospace,monospace}\
pre{background:#f3f3f3;padding:.7rem;overflow-x:auto;border-radius:4px}\
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.3rem .5rem;text-align:left;vertical-align:top}\
.m{display:inline-block;min-width:4em;text-align:center;color:#fff;border-radius:3px;padding:0 .3em;font-size:.85em;font-weight:bold}\
.get{background:#2b7bb9}.post{background:#3a9a4a}.put,.patch{background:#c98a12}.delete{background:#c0392b}\
.summary{font-weight:600}.note{color:#555}nav ul{list-style:none;padding-left:0}nav li{margin:.2rem 0}";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_lists_every_operation_with_schemas_and_curl() {
        let doc = serde_json::to_value(document()).unwrap();
        let page = render(&doc);
        for needle in [
            "<code>/v1/predict</code>",
            "<code>/v1/predict/batch</code>",
            "<code>/v1/models</code>",
            "<code>/v1/admin/reload</code>",
            "<code>/health</code>",
            "<code>/ready</code>",
            "<code>/metrics</code>",
            "Classify one text.",
            "curl -s -X POST &quot;$TAXON_URL/v1/predict&quot;",
            "id=\"schema-PredictResponse\"",
            "id=\"schema-ErrorBody\"",
            "map of string to number (float)",
        ] {
            assert!(page.contains(needle), "{needle} missing");
        }
        // Self-contained: no scripts, no external stylesheets, images or fonts.
        for outside in ["<script", "<link", "src=", "@import", "url("] {
            assert!(!page.contains(outside), "{outside} in the page");
        }
    }

    #[test]
    fn escapes_and_curl_quoting() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
        let spec = Value::Null;
        let op = Operation {
            path: "/v1/predict",
            method: "post",
            spec: &spec,
        };
        let body = (
            "application/json".to_string(),
            serde_json::json!({"text": "it's"}),
        );
        let line = curl_line(&op, Some(&body));
        assert!(line.contains("-d '{\"text\":\"it'\\''s\"}'"), "{line}");
    }
}
