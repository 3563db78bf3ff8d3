//! What is wrong with a configuration file, and where: [`ConfigError`] (every problem, one a
//! line) and the helpers that turn a key (`smtp.users[1].name`) or a TOML error into
//! `file:line: key: message`. Reading every type error at once ([`deserialize_all`]) lives here
//! too, since it is mostly locating.

use std::ops::Range;

use super::Config;

/// Everything wrong with a configuration file, one line per problem.
#[derive(Debug, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct ConfigError {
    pub problems: Vec<String>,
}

/// `(key, message)` problems as `file:line: key: message`, the line where `key` is defined (or
/// its table's), or `file: key: message` when the file has neither.
pub(super) fn locate(problems: Vec<(String, String)>, text: &str, file: &str) -> ConfigError {
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok();
    let problems = problems
        .into_iter()
        .map(|(key, msg)| match doc.as_ref().and_then(|d| key_line(d, text, &key)) {
            Some(l) => format!("{file}:{l}: {key}: {msg}"),
            None => format!("{file}: {key}: {msg}"),
        })
        .collect();
    ConfigError { problems }
}

/// 1-based line of a byte offset.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The line that defines `a.b`, or the line of the nearest table that holds it when the key is
/// absent. A segment may index an array of tables: `smtp.users[1].password_hash` (the key in the
/// second `[[smtp.users]]`, or its header), `channels[0].aliases.ops`.
fn key_line(doc: &toml_edit::ImDocument<String>, text: &str, key: &str) -> Option<usize> {
    let mut table: &dyn toml_edit::TableLike = doc.as_table();
    let mut found: Option<usize> = None;
    for segment in key.split('.') {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(']')?.parse::<usize>().ok()?)),
            None => (segment, None),
        };
        let Some((k, item)) = table.get_key_value(name) else { break };
        if let Some(index) = index {
            let Some(entry) = item.as_array_of_tables().and_then(|a| a.get(index)) else { break };
            found = entry.span().map(|s| s.start).or(found);
            table = entry;
            continue;
        }
        found = k.span().or_else(|| item.as_table().and_then(|t| t.span())).map(|s| s.start).or(found);
        match item.as_table_like() {
            Some(t) => table = t,
            None => break,
        }
    }
    found.map(|offset| line_of(text, offset))
}

/// How many wrong keys one run reports at most (each costs a parse of the file).
const MAX_TYPE_PROBLEMS: usize = 50;

/// Deserializes the file, reporting every key of the wrong type or unknown name rather than the
/// first only: serde stops at the first error, so the offending `key = value` is blanked out
/// (spaces, line breaks kept so that later line numbers still hold) and the text is read again.
/// An error about a whole table (an unknown `[section]`, a missing field) blanks the table; when
/// the missing field is one blanked before, that error is not reported, being our own doing.
/// A syntax error ends the search: what follows it cannot be read reliably.
pub(super) fn deserialize_all(text: &str, file: &str) -> Result<Config, Vec<String>> {
    let mut current = text.to_owned();
    let mut problems = Vec::new();
    // The keys blanked so far: a table's later complaint about one of them is our doing.
    let mut blanked: Vec<String> = Vec::new();
    for _ in 0..MAX_TYPE_PROBLEMS {
        let e = match toml::from_str::<Config>(&current) {
            Ok(config) if problems.is_empty() => return Ok(config),
            Ok(_) => return Err(problems),
            Err(e) => e,
        };
        let found = e.span().and_then(|span| entry_around(&current, span.start));
        let ours = found.as_ref().is_some_and(|f| f.table && blanked.iter().any(|k| k.starts_with(&format!("{}.", f.key))));
        if !ours {
            problems.push(describe_toml_error(&current, file, &e, found.as_ref().map(|f| f.key.as_str())));
        }
        let Some(found) = found else { break };
        let mut progress = false;
        for range in found.ranges {
            let spaces: String = current[range.clone()].chars().map(|c| if c == '\n' { '\n' } else { ' ' }).collect();
            progress |= spaces != current[range.clone()];
            current.replace_range(range, &spaces);
        }
        blanked.push(found.key);
        if !progress {
            break;
        }
    }
    Err(problems)
}

/// What holds a deserialization error: a `key = value`, or a whole table.
struct Found {
    /// The full key, e.g. `smtp.users[1].name`.
    key: String,
    /// Byte ranges to blank: the entry, or the table's header and each of its entries (not the
    /// text between them, which may belong to other tables).
    ranges: Vec<Range<usize>>,
    table: bool,
}

/// The innermost `key = value`, or else table, whose text contains `offset`.
fn entry_around(text: &str, offset: usize) -> Option<Found> {
    fn entry_range(table: &dyn toml_edit::TableLike, name: &str, value: &toml_edit::Value) -> Option<Range<usize>> {
        Some(table.key(name)?.span()?.start..value.span()?.end)
    }
    /// A table's header and entries, subtables included.
    fn table_ranges(table: &toml_edit::Table) -> Vec<Range<usize>> {
        let mut ranges: Vec<Range<usize>> = table.span().into_iter().collect();
        for (name, item) in table.iter() {
            match item {
                toml_edit::Item::Value(value) => ranges.extend(entry_range(table, name, value)),
                toml_edit::Item::Table(t) => ranges.extend(table_ranges(t)),
                toml_edit::Item::ArrayOfTables(array) => array.iter().for_each(|t| ranges.extend(table_ranges(t))),
                toml_edit::Item::None => {}
            }
        }
        ranges
    }
    fn in_table(table: &toml_edit::Table, path: String, offset: usize) -> Option<Found> {
        if let Some(found) = search(table, &path, offset) {
            return Some(found);
        }
        let ranges = table_ranges(table);
        ranges.iter().any(|r| r.contains(&offset)).then_some(Found { key: path, ranges, table: true })
    }
    fn search(table: &toml_edit::Table, prefix: &str, offset: usize) -> Option<Found> {
        for (name, item) in table.iter() {
            let path = if prefix.is_empty() { name.to_owned() } else { format!("{prefix}.{name}") };
            let found = match item {
                toml_edit::Item::Value(value) => entry_range(table, name, value)
                    .filter(|r| r.contains(&offset))
                    .map(|r| Found { key: path, ranges: vec![r], table: false }),
                toml_edit::Item::Table(t) => in_table(t, path, offset),
                toml_edit::Item::ArrayOfTables(array) => {
                    array.iter().enumerate().find_map(|(i, t)| in_table(t, format!("{path}[{i}]"), offset))
                }
                toml_edit::Item::None => None,
            };
            if found.is_some() {
                return found;
            }
        }
        None
    }
    let doc = toml_edit::ImDocument::parse(text.to_owned()).ok()?;
    search(doc.as_table(), "", offset)
}

/// Turns a TOML/serde error into `file:line: key: message`, naming the full key: `key` when
/// the document says which entry holds the error, else the key written on that line.
fn describe_toml_error(text: &str, file: &str, e: &toml::de::Error, key: Option<&str>) -> String {
    let message = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else {
        return format!("{file}: {message}");
    };
    let line = line_of(text, span.start);
    match key.map(str::to_owned).or_else(|| key_at(text, line)) {
        Some(key) => format!("{file}:{line}: {key}: {message}"),
        None => format!("{file}:{line}: {message}"),
    }
}

/// The dotted key defined on `line` (1-based), from the nearest `[table]` header above it.
fn key_at(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().collect();
    let here = lines.get(line.checked_sub(1)?)?.trim();
    let table = lines[..line - 1]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('[') && !l.starts_with("[["))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    if here.starts_with('[') {
        return Some(here.trim_matches(|c| c == '[' || c == ']').trim().to_owned());
    }
    let key = here.split('=').next()?.trim().trim_matches('"');
    if key.is_empty() {
        return None;
    }
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_owned(),
    })
}
