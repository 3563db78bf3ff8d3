//! Validation of request bodies against LINE's official OpenAPI documents.
//!
//! Owns: finding and caching the specs (which live *outside* the repo, in
//! `$CARGO_MANIFEST_DIR/../shared/line-openapi/`, and are never copied in),
//! turning their OpenAPI 3.0 schemas into JSON Schema 2020-12 that the
//! `jsonschema` crate understands, and matching concrete request paths such as
//! `/v2/bot/profile/U123` to the spec's path templates.
//!
//! Bodies are JSON (`messaging-api.yml`) or `application/x-www-form-urlencoded`
//! (the token endpoints of `channel-access-token.yml`). A form is checked by
//! decoding it into a JSON object of strings ([`decode_form`]) and validating
//! that object against the operation's form schema, so the same strict schema
//! machinery polices both; each body is checked only against the media type it
//! was sent as.
//!
//! Why the rewrite is more than a format change: the spec describes message
//! objects with `discriminator` + `mapping` (`Message.type = "text"` means
//! `TextMessage`, …), and each subtype is `allOf: [$ref Message, {…}]`. Plain
//! JSON Schema ignores `discriminator`, so without help `{"type":"txt"}` or a
//! text message without `text` would pass. We therefore expand every
//! discriminator into `if`/`then` branches and make the mapped subtypes strict
//! (`unevaluatedProperties: false`) so misspelled fields are caught too.
//! See [`expand_discriminators`] for the exact shape.
//!
//! When the spec files are missing the checks are skipped with a one-line
//! notice, unless `MAIL2LINE_REQUIRE_SPEC=1` (CI) makes that a hard failure.
//! `MAIL2LINE_LINE_OPENAPI_DIR` may point at another directory holding them.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};

const SCHEMA_PREFIX: &str = "#/components/schemas/";
const BASE_SUFFIX: &str = "__base";

/// One schema violation: where in the instance (JSON pointer, "" = root) and
/// what is wrong. `Display` gives `"<pointer>: <message>"`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub pointer: String,
    pub message: String,
}

impl Violation {
    fn whole(message: impl Into<String>) -> Self {
        Violation { pointer: String::new(), message: message.into() }
    }

    /// The pointer in LINE's `details[].property` style: `/messages/0/text`
    /// becomes `messages[0].text`.
    pub fn property(&self) -> String {
        let mut out = String::new();
        for seg in self.pointer.split('/').skip(1) {
            let seg = seg.replace("~1", "/").replace("~0", "~");
            if !seg.is_empty() && seg.bytes().all(|b| b.is_ascii_digit()) {
                out.push_str(&format!("[{seg}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&seg);
            }
        }
        out
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = if self.pointer.is_empty() { "(root)" } else { &self.pointer };
        write!(f, "{at}: {}", self.message)
    }
}

fn to_strings(v: Vec<Violation>) -> Vec<String> {
    v.into_iter().map(|v| v.to_string()).collect()
}

/// A loaded, converted OpenAPI document. Cheap to clone (shared inside).
#[derive(Clone)]
pub struct Spec {
    inner: Arc<Inner>,
}

struct Inner {
    file: PathBuf,
    /// The OpenAPI document as JSON, untouched; `paths` are read from here.
    doc: Value,
    /// `components` after the OpenAPI → JSON Schema rewrite. Every validator's
    /// root document carries this so `#/components/schemas/X` resolves in-document.
    components: Value,
    /// Compiled validators keyed by what they validate; compiling walks a
    /// large part of the spec, and many tests validate the same few schemas.
    validators: Mutex<HashMap<String, Arc<jsonschema::Validator>>>,
}

impl fmt::Debug for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spec").field("file", &self.inner.file).finish()
    }
}

/// Where the specs are looked for.
pub fn spec_dir() -> PathBuf {
    match std::env::var_os("MAIL2LINE_LINE_OPENAPI_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/line-openapi"),
    }
}

fn spec_required() -> bool {
    std::env::var("MAIL2LINE_REQUIRE_SPEC").is_ok_and(|v| v.trim() == "1")
}

impl Spec {
    /// Loads `file_name` (e.g. `"messaging-api.yml"`) from [`spec_dir`].
    ///
    /// Missing file: panics if `MAIL2LINE_REQUIRE_SPEC=1`, otherwise prints a
    /// one-line notice and returns `None` so the caller skips schema checks.
    /// A file that exists but does not parse always panics: that is a broken
    /// checkout, not an optional extra. Results are cached per process.
    pub fn load(file_name: &str) -> Option<Spec> {
        static CACHE: OnceLock<Mutex<HashMap<String, Option<Spec>>>> = OnceLock::new();
        let cache = CACHE.get_or_init(Default::default);
        // A panic below (required spec missing) poisons the lock; later tests
        // should still get their own clear panic rather than a PoisonError.
        let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(hit) = cache.get(file_name) {
            return hit.clone();
        }
        let path = spec_dir().join(file_name);
        let loaded = match std::fs::read_to_string(&path) {
            Ok(text) => Some(Spec::parse(&path, &text)),
            Err(err) => {
                if spec_required() {
                    panic!(
                        "LINE OpenAPI spec required (MAIL2LINE_REQUIRE_SPEC=1) but not readable at {}: {err}",
                        path.display()
                    );
                }
                eprintln!("LINE OpenAPI spec not found at {}; schema checks skipped", path.display());
                None
            }
        };
        cache.insert(file_name.to_string(), loaded.clone());
        loaded
    }

    fn parse(path: &Path, text: &str) -> Spec {
        let yaml: serde_yaml::Value =
            serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
        let doc = yaml_to_json(yaml);
        let mut components = doc.get("components").cloned().unwrap_or_else(|| json!({}));
        convert_openapi_keywords(&mut components);
        if let Some(Value::Object(schemas)) = components.get_mut("schemas") {
            expand_discriminators(schemas);
        }
        Spec {
            inner: Arc::new(Inner {
                file: path.to_path_buf(),
                doc,
                components,
                validators: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The file this spec was read from.
    pub fn file(&self) -> &Path {
        &self.inner.file
    }

    /// Validates a request body for `method` + concrete `path` (query string
    /// ignored). `body` is `Value::Null` when the request had no JSON body.
    /// An unknown path or method is an error as well.
    pub fn validate_request(&self, method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
        self.check_request(method, path, body).map_err(to_strings)
    }

    /// [`Spec::validate_request`] with structured violations (used by the stand-in
    /// to fill LINE-style `details[].property`).
    pub fn check_request(&self, method: &str, path: &str, body: &Value) -> Result<(), Vec<Violation>> {
        self.check_body(method, path, JSON, body)
    }

    /// Validates an `application/x-www-form-urlencoded` request body (raw
    /// bytes) for `method` + concrete `path`, e.g. `POST /oauth2/v2.1/token`.
    pub fn validate_form_request(&self, method: &str, path: &str, raw: &[u8]) -> Result<(), Vec<String>> {
        let form = decode_form(raw).map_err(|e| vec![e])?;
        self.check_form_request(method, path, &form).map_err(to_strings)
    }

    /// [`Spec::validate_form_request`] for a form already decoded with
    /// [`decode_form`] (`Value::Null` when there was no body).
    pub fn check_form_request(&self, method: &str, path: &str, form: &Value) -> Result<(), Vec<Violation>> {
        self.check_body(method, path, FORM, form)
    }

    /// Checks `body`, sent as `media_type`, against the operation's schema for
    /// that media type. A body the operation does not document under that
    /// media type is an error, and so is a missing required one.
    fn check_body(&self, method: &str, path: &str, media_type: &str, body: &Value) -> Result<(), Vec<Violation>> {
        let (template, op) = self.find_operation(method, path).map_err(|e| vec![Violation::whole(e)])?;
        let request_body = op.get("requestBody").map(|rb| self.deref(rb));
        let pointer = format!("/content/{}/schema", media_type.replace('/', "~1"));
        let schema = request_body.and_then(|rb| rb.pointer(&pointer));
        match schema {
            Some(schema) => {
                if body.is_null() {
                    let required = request_body.and_then(|rb| rb.get("required")) == Some(&Value::Bool(true));
                    if required {
                        return Err(vec![Violation::whole(format!(
                            "{} {template} requires an {media_type} body",
                            method.to_uppercase()
                        ))]);
                    }
                    return Ok(());
                }
                // The JSON request keys stay as they were so existing cache
                // entries and messages do not change.
                let key = if media_type == JSON {
                    format!("request {} {template}", method.to_uppercase())
                } else {
                    format!("request {} {template} {media_type}", method.to_uppercase())
                };
                self.run(&key, schema, body)
            }
            None if body.is_null() => Ok(()),
            None => Err(vec![Violation::whole(format!(
                "{} {template} takes no {media_type} body, but one was sent",
                method.to_uppercase()
            ))]),
        }
    }

    /// Validates `body` against the documented response for `status` (falling
    /// back to `default`). Meant for checking the stand-in's own answers.
    pub fn validate_response(&self, method: &str, path: &str, status: u16, body: &Value) -> Result<(), Vec<String>> {
        let (template, op) = self.find_operation(method, path).map_err(|e| vec![e])?;
        let responses = op.get("responses").ok_or_else(|| vec![format!("{template}: no responses documented")])?;
        let response =
            responses.get(status.to_string()).or_else(|| responses.get("default")).map(|r| self.deref(r)).ok_or_else(
                || vec![format!("{} {template}: status {status} is not documented", method.to_uppercase())],
            )?;
        match response.pointer("/content/application~1json/schema") {
            Some(schema) => {
                let key = format!("response {} {template} {status}", method.to_uppercase());
                self.run(&key, schema, body).map_err(to_strings)
            }
            None if body.is_null() => Ok(()),
            None => Err(vec![format!(
                "{} {template}: status {status} documents no application/json body",
                method.to_uppercase()
            )]),
        }
    }

    /// Validates `value` against the component schema `name` (e.g. "ErrorResponse").
    pub fn validate_schema(&self, name: &str, value: &Value) -> Result<(), Vec<String>> {
        let known = self.inner.components.pointer(&format!("/schemas/{name}")).is_some();
        if !known {
            return Err(vec![format!("{} has no component schema named {name:?}", self.inner.file.display())]);
        }
        let schema = json!({ "$ref": format!("{SCHEMA_PREFIX}{name}") });
        self.run(&format!("schema {name}"), &schema, value).map_err(to_strings)
    }

    /// The path template of the operation `method` + concrete `path` maps to,
    /// or why there is none (unknown path, or path without that method).
    pub fn operation_template(&self, method: &str, path: &str) -> Result<String, String> {
        self.find_operation(method, path).map(|(template, _)| template)
    }

    /// Finds the operation for a concrete path. Literal segments beat
    /// `{param}` segments, so `/v2/bot/message/quota` never matches a
    /// `/v2/bot/message/{messageId}`-style template when a literal one exists.
    fn find_operation(&self, method: &str, path: &str) -> Result<(String, &Value), String> {
        let path = path.split(['?', '#']).next().unwrap_or("");
        let wanted: Vec<&str> = path.split('/').collect();
        let file = self.inner.file.display();
        let paths =
            self.inner.doc.get("paths").and_then(Value::as_object).ok_or_else(|| format!("{file} has no paths"))?;
        let mut best: Option<(usize, &String, &Value)> = None;
        for (template, item) in paths {
            let segs: Vec<&str> = template.split('/').collect();
            if segs.len() != wanted.len() {
                continue;
            }
            let mut literal = 0;
            let fits = segs.iter().zip(&wanted).all(|(t, c)| {
                if t.starts_with('{') && t.ends_with('}') {
                    !c.is_empty()
                } else {
                    literal += 1;
                    t == c
                }
            });
            if fits && best.is_none_or(|(score, _, _)| literal > score) {
                best = Some((literal, template, item));
            }
        }
        let (_, template, item) = best.ok_or_else(|| format!("no path in {file} matches {path}"))?;
        let method_lc = method.to_ascii_lowercase();
        match item.get(&method_lc) {
            Some(op) => Ok((template.clone(), op)),
            None => {
                let has: Vec<&str> = item
                    .as_object()
                    .map(|m| m.keys().map(String::as_str).filter(|k| is_http_method(k)).collect())
                    .unwrap_or_default();
                Err(format!(
                    "{} {template} is not an operation in {file} (documented: {})",
                    method.to_uppercase(),
                    has.join(", ")
                ))
            }
        }
    }

    /// Follows a `$ref` to `#/components/...` in the raw document (request
    /// bodies and responses may be shared that way).
    fn deref<'a>(&'a self, v: &'a Value) -> &'a Value {
        match v.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(pointer) => self.inner.doc.pointer(pointer).unwrap_or(v),
            None => v,
        }
    }

    fn run(&self, key: &str, schema: &Value, instance: &Value) -> Result<(), Vec<Violation>> {
        let validator = self.validator(key, schema).map_err(|e| vec![Violation::whole(e)])?;
        let mut errors = Vec::new();
        let mut unevaluated = Vec::new();
        for e in validator.iter_errors(instance) {
            let v = Violation { pointer: e.instance_path.as_str().to_string(), message: e.to_string() };
            match e.kind {
                jsonschema::error::ValidationErrorKind::UnevaluatedProperties { .. } => unevaluated.push(v),
                _ => errors.push(v),
            }
        }
        // A failing subschema contributes no annotations, so one wrong nested
        // value (say an emoji index given as a string) makes the enclosing
        // `unevaluatedProperties: false` list *every* property as unexpected.
        // That report is noise; keep it only when nothing below it failed, i.e.
        // when the extra property really is the problem.
        for u in unevaluated {
            let below = format!("{}/", u.pointer);
            if !errors.iter().any(|e| e.pointer.starts_with(&below)) {
                errors.push(u);
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(errors)
        }
    }

    fn validator(&self, key: &str, schema: &Value) -> Result<Arc<jsonschema::Validator>, String> {
        let mut cache = self.inner.validators.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = cache.get(key) {
            return Ok(v.clone());
        }
        // The root document is the (converted) schema itself plus the spec's
        // components under the same key as in OpenAPI, so the spec's own
        // "#/components/schemas/X" refs resolve inside this one document.
        let mut root = schema.clone();
        convert_openapi_keywords(&mut root);
        let mut root = match root {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("allOf".into(), json!([other]));
                m
            }
        };
        root.insert("$schema".into(), json!("https://json-schema.org/draft/2020-12/schema"));
        root.insert("components".into(), self.inner.components.clone());
        let validator = jsonschema::options()
            .with_draft(jsonschema::Draft::Draft202012)
            .build(&Value::Object(root))
            .map_err(|e| format!("cannot compile schema for {key} from {}: {e}", self.inner.file.display()))?;
        let validator = Arc::new(validator);
        cache.insert(key.to_string(), validator.clone());
        Ok(validator)
    }
}

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

/// Decodes an `application/x-www-form-urlencoded` body into a JSON object of
/// strings — the instance a form schema describes. Strict, because a gateway
/// that sends a malformed form has a bug: a field without `=`, a repeated
/// field, a bad `%` escape or non-UTF-8 text is an error, not a guess. An
/// empty body is `{}` (the schema's `required` then says what is missing).
pub fn decode_form(raw: &[u8]) -> Result<Value, String> {
    let mut out = Map::new();
    if raw.is_empty() {
        return Ok(Value::Object(out));
    }
    for (i, pair) in raw.split(|&b| b == b'&').enumerate() {
        let Some(eq) = pair.iter().position(|&b| b == b'=') else {
            return Err(format!("form field {i} has no '=': {:?}", String::from_utf8_lossy(pair)));
        };
        let name = percent_decode(&pair[..eq]).map_err(|e| format!("form field {i} name: {e}"))?;
        let value = percent_decode(&pair[eq + 1..]).map_err(|e| format!("form field {name:?}: {e}"))?;
        if name.is_empty() {
            return Err(format!("form field {i} has an empty name"));
        }
        if out.insert(name.clone(), Value::String(value)).is_some() {
            return Err(format!("form field {name:?} appears more than once"));
        }
    }
    Ok(Value::Object(out))
}

/// `+` is a space and `%XX` a byte; the result must be UTF-8.
fn percent_decode(bytes: &[u8]) -> Result<String, String> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .filter(|h| h.iter().all(u8::is_ascii_hexdigit))
                    .and_then(|h| std::str::from_utf8(h).ok());
                let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or("bad %-escape")?;
                out.push(byte);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| "not UTF-8 after %-decoding".to_string())
}

fn is_http_method(k: &str) -> bool {
    matches!(k, "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace")
}

/// serde_yaml can produce non-string map keys (e.g. an unquoted `200:`);
/// JSON cannot, so keys are stringified here instead of deserializing YAML
/// straight into `serde_json::Value`.
fn yaml_to_json(v: serde_yaml::Value) -> Value {
    use serde_yaml::Value as Y;
    match v {
        Y::Null => Value::Null,
        Y::Bool(b) => Value::Bool(b),
        Y::Number(n) => {
            if let Some(i) = n.as_i64() {
                json!(i)
            } else if let Some(u) = n.as_u64() {
                json!(u)
            } else {
                json!(n.as_f64())
            }
        }
        Y::String(s) => Value::String(s),
        Y::Sequence(items) => Value::Array(items.into_iter().map(yaml_to_json).collect()),
        Y::Mapping(map) => {
            let mut out = Map::new();
            for (k, v) in map {
                let key = match k {
                    Y::String(s) => s,
                    Y::Number(n) => n.to_string(),
                    Y::Bool(b) => b.to_string(),
                    other => serde_yaml::to_string(&other).unwrap_or_default().trim().to_string(),
                };
                out.insert(key, yaml_to_json(v));
            }
            Value::Object(out)
        }
        Y::Tagged(t) => yaml_to_json(t.value),
    }
}

/// OpenAPI 3.0 keywords that JSON Schema spells differently. Today that is
/// only `nullable: true` (3.0 has no `"null"` type): `type: X` becomes
/// `type: [X, "null"]` (and `null` joins any `enum`); a nullable schema with no
/// `type` is wrapped as `anyOf: [{type: null}, <schema>]`.
fn convert_openapi_keywords(v: &mut Value) {
    match v {
        Value::Array(items) => items.iter_mut().for_each(convert_openapi_keywords),
        Value::Object(map) => {
            map.values_mut().for_each(convert_openapi_keywords);
            if map.get("nullable") != Some(&Value::Bool(true)) {
                return;
            }
            map.remove("nullable");
            if let Some(Value::Array(e)) = map.get_mut("enum") {
                if !e.contains(&Value::Null) {
                    e.push(Value::Null);
                }
            }
            match map.get("type").cloned() {
                Some(Value::String(t)) => {
                    map.insert("type".into(), json!([t, "null"]));
                }
                Some(Value::Array(mut ts)) => {
                    if !ts.contains(&json!("null")) {
                        ts.push(json!("null"));
                    }
                    map.insert("type".into(), Value::Array(ts));
                }
                _ => {
                    let inner = std::mem::take(map);
                    map.insert("anyOf".into(), json!([{ "type": "null" }, Value::Object(inner)]));
                }
            }
        }
        _ => {}
    }
}

/// Makes `discriminator` + `mapping` enforceable in JSON Schema.
///
/// For each schema `S` with `discriminator {propertyName: P, mapping: {K: T}}`:
/// * `S__base` = `S` without the discriminator (the common properties);
/// * inside every mapped subtype `T`, the `allOf` entry `$ref S` becomes
///   `$ref S__base` — otherwise `T → S → (if type=K then T) → S …` recurses;
/// * `T` gets `unevaluatedProperties: false`: properties declared in either
///   `S__base` or `T`'s own part count as evaluated (2020-12 collects
///   annotations through `allOf` and `$ref`), anything else — `"emoji"` for
///   `"emojis"`, `"Text"` — is rejected;
/// * `S` = `allOf: [ $ref S__base, {P ∈ mapping keys, P required},
///   if {P = K} then $ref T, … ]`, so an unknown `type` fails and a known one
///   is checked against its subtype.
///
/// A subtype that is itself a discriminator base is left non-strict (its own
/// subtypes are strict) — the current LINE specs have no such case.
/// Discriminators without `mapping` are left as they are (ignored).
fn expand_discriminators(schemas: &mut Map<String, Value>) {
    struct Disc {
        name: String,
        prop: String,
        mapping: Vec<(String, String)>,
    }
    let mut discs = Vec::new();
    for (name, schema) in schemas.iter() {
        let Some(d) = schema.get("discriminator") else { continue };
        let Some(prop) = d.get("propertyName").and_then(Value::as_str) else { continue };
        let Some(mapping) = d.get("mapping").and_then(Value::as_object) else { continue };
        let mapping = mapping
            .iter()
            .filter_map(|(k, r)| Some((k.clone(), r.as_str()?.strip_prefix(SCHEMA_PREFIX)?.to_string())))
            .collect();
        discs.push(Disc { name: name.clone(), prop: prop.to_string(), mapping });
    }
    let bases: Vec<String> = discs.iter().map(|d| d.name.clone()).collect();

    for d in &discs {
        let base_ref = json!(format!("{SCHEMA_PREFIX}{}", d.name));
        let new_ref = json!(format!("{SCHEMA_PREFIX}{}{BASE_SUFFIX}", d.name));
        for (_, target) in &d.mapping {
            let Some(Value::Object(t)) = schemas.get_mut(target) else { continue };
            if let Some(Value::Array(parts)) = t.get_mut("allOf") {
                for part in parts {
                    if part.get("$ref") == Some(&base_ref) {
                        part["$ref"] = new_ref.clone();
                    }
                }
            }
            if !bases.contains(target) {
                t.insert("unevaluatedProperties".into(), Value::Bool(false));
            }
        }
    }

    for d in &discs {
        let Some(Value::Object(original)) = schemas.get(&d.name).cloned() else { continue };
        let mut base = original.clone();
        base.remove("discriminator");
        schemas.insert(format!("{}{BASE_SUFFIX}", d.name), Value::Object(base));

        let keys: Vec<&str> = d.mapping.iter().map(|(k, _)| k.as_str()).collect();
        let mut parts = vec![
            json!({ "$ref": format!("{SCHEMA_PREFIX}{}{BASE_SUFFIX}", d.name) }),
            json!({ "properties": { d.prop.as_str(): { "enum": keys } }, "required": [d.prop.as_str()] }),
        ];
        for (key, target) in &d.mapping {
            parts.push(json!({
                "if": { "properties": { d.prop.as_str(): { "const": key } }, "required": [d.prop.as_str()] },
                "then": { "$ref": format!("{SCHEMA_PREFIX}{target}") }
            }));
        }
        let mut wrapper = Map::new();
        if let Some(desc) = original.get("description") {
            wrapper.insert("description".into(), desc.clone());
        }
        wrapper.insert("allOf".into(), Value::Array(parts));
        schemas.insert(d.name.clone(), Value::Object(wrapper));
    }
}
