//! Every structural error of a file at once: serde stops at the first unknown key or
//! mistyped value, so on failure the file is parsed into toml's spanned tree
//! ([`toml::de::DeTable`]), and each error's node is located (for its key path, with array
//! indices, from the original tree), reported, and cut from a working copy of the tree; serde
//! then runs again on the rest, until it succeeds or [`MAX_ROUNDS`] errors were found. The
//! repaired file is compiled as usual, so value errors the compiler finds (bad durations,
//! unknown targets ...) are reported too. Spans stay those of the original text.
//!
//! Cascades are kept out: a "missing field" on a table that lost a key here is not reported
//! again, errors about a table as a whole that lost a key (`targets.t: a target is either uri
//! or number` after the misspelt `url` was cut) are dropped, and "unknown plan/target ..."
//! naming an entry that had to be cut whole is dropped ([`Taint`]).

use std::collections::HashSet;
use std::ops::Range;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::compile::q;
use crate::schema::RawFile;

/// Most structural errors reported per file.
const MAX_ROUNDS: usize = 200;

/// One structural problem: where, which key, what, how to fix.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    pub span: Range<usize>,
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

/// What was cut from a file to get past its structural errors (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Taint {
    /// Key paths of tables (or arrays) that lost a key or element.
    tables: HashSet<String>,
    /// Names of `[plans.X]`, `[targets.X]` ... entries cut whole.
    names: HashSet<String>,
    /// Array elements cut: (the array's key path, the element's index in the file).
    elems: Vec<(String, usize)>,
}

impl Taint {
    /// Whether a compile error is a consequence of something cut here.
    pub(crate) fn explains(&self, key: &str, message: &str) -> bool {
        if self.tables.contains(key) {
            return true;
        }
        message.starts_with("unknown ")
            && self
                .names
                .iter()
                .any(|n| message.contains(&format!("{n:?}")))
    }

    /// Whether nothing was cut.
    pub(crate) fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.names.is_empty() && self.elems.is_empty()
    }

    /// Add another file's.
    pub(crate) fn merge(&mut self, o: Taint) {
        self.tables.extend(o.tables);
        self.names.extend(o.names);
        self.elems.extend(o.elems);
    }

    /// A compile error's key path, whose indices count what was left of an array after a cut,
    /// with the indices of the file (`groups[0]` is `groups[1]` when the first group was cut).
    pub(crate) fn remap(&self, key: &str) -> String {
        let mut arrays: Vec<&str> = self.elems.iter().map(|(a, _)| a.as_str()).collect();
        arrays.sort_by_key(|a| a.len());
        arrays.dedup();
        let mut key = key.to_string();
        for a in arrays {
            let Some(rest) = key.strip_prefix(a).and_then(|r| r.strip_prefix('[')) else {
                continue;
            };
            let Some((n, tail)) = rest.split_once(']') else {
                continue;
            };
            let Ok(n) = n.parse::<usize>() else { continue };
            let cut: HashSet<usize> = self
                .elems
                .iter()
                .filter(|(x, _)| x == a)
                .map(|(_, i)| *i)
                .collect();
            let Some(orig) = (0..).filter(|i| !cut.contains(i)).nth(n) else {
                continue;
            };
            key = format!("{a}[{orig}]{tail}");
        }
        key
    }
}

/// A file parsed as far as it goes.
pub(crate) struct Parsed {
    /// `None` only for a TOML syntax error (nothing to recover from).
    pub file: Option<RawFile>,
    pub problems: Vec<Problem>,
    pub taint: Taint,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(&q(k));
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

fn contains(span: &Range<usize>, at: usize) -> bool {
    span.start <= at && (at < span.end || span.is_empty() && at == span.start)
}

/// Deepest node of `table` whose key or value span holds `at`; `path` ends up naming it.
fn locate(table: &DeTable<'_>, at: usize, path: &mut Vec<Seg>) -> bool {
    for (k, v) in table.iter() {
        path.push(Seg::Key(k.get_ref().to_string()));
        if locate_in(v, at, path) || contains(&k.span(), at) || contains(&v.span(), at) {
            return true;
        }
        path.pop();
    }
    false
}

fn locate_in(v: &Spanned<DeValue<'_>>, at: usize, path: &mut Vec<Seg>) -> bool {
    match v.get_ref() {
        DeValue::Table(t) => locate(t, at, path),
        DeValue::Array(a) => {
            for (i, e) in a.iter().enumerate() {
                path.push(Seg::Index(i));
                if locate_in(e, at, path) || contains(&e.span(), at) {
                    return true;
                }
                path.pop();
            }
            false
        }
        _ => false,
    }
}

/// Whether the node at `path` is a table.
fn is_table(table: &DeTable<'_>, path: &[Seg]) -> bool {
    matches!(node(table, path), Some(DeValue::Table(_)))
}

fn node<'a, 'i>(table: &'a DeTable<'i>, path: &[Seg]) -> Option<&'a DeValue<'i>> {
    let (Seg::Key(k), rest) = path.split_first()? else {
        return None;
    };
    let v = table
        .iter()
        .find(|(kk, _)| kk.get_ref().as_ref() == k.as_str())?;
    node_in(v.1.get_ref(), rest)
}

fn node_in<'a, 'i>(v: &'a DeValue<'i>, path: &[Seg]) -> Option<&'a DeValue<'i>> {
    match (path.first(), v) {
        (None, _) => Some(v),
        (Some(Seg::Key(_)), DeValue::Table(t)) => node(t, path),
        (Some(Seg::Index(i)), DeValue::Array(a)) => node_in(a.get(*i)?.get_ref(), &path[1..]),
        _ => None,
    }
}

/// Cut the node at `path`. Returns whether something was cut.
fn remove(table: &mut DeTable<'_>, path: &[Seg]) -> bool {
    match path {
        [] => false,
        [Seg::Key(k)] => {
            let found = table
                .iter()
                .find(|(kk, _)| kk.get_ref().as_ref() == k.as_str())
                .map(|(kk, _)| kk.clone());
            match found {
                Some(kk) => table.remove(&kk).is_some(),
                None => false,
            }
        }
        [Seg::Key(k), rest @ ..] => match table
            .iter_mut()
            .find(|(kk, _)| kk.get_ref().as_ref() == k.as_str())
        {
            Some((_, v)) => remove_in(v.get_mut(), rest),
            None => false,
        },
        [Seg::Index(_), ..] => false,
    }
}

fn remove_in(v: &mut DeValue<'_>, path: &[Seg]) -> bool {
    match (v, path) {
        (DeValue::Table(t), _) => remove(t, path),
        (DeValue::Array(a), [Seg::Index(i)]) => {
            if *i >= a.len() {
                return false;
            }
            let old = std::mem::replace(a, toml::de::DeArray::new());
            *a = old
                .into_iter()
                .enumerate()
                .filter(|(j, _)| j != i)
                .map(|(_, e)| e)
                .collect();
            true
        }
        (DeValue::Array(a), [Seg::Index(i), rest @ ..]) => match a.get_mut(*i) {
            Some(e) => remove_in(e.get_mut(), rest),
            None => false,
        },
        _ => false,
    }
}

/// The top-level tables whose entries are named things other entries refer to.
const NAMED: [&str; 6] = [
    "gateways",
    "targets",
    "plans",
    "lists",
    "companies",
    "numbers",
];

/// Parse one file's text, reporting every structural error (see the module docs).
pub(crate) fn parse_file(text: &str) -> Parsed {
    let first = match toml::from_str::<RawFile>(text) {
        Ok(f) => {
            return Parsed {
                file: Some(f),
                problems: Vec::new(),
                taint: Taint::default(),
            }
        }
        Err(e) => e,
    };
    let orig = match DeTable::parse(text) {
        Ok(t) => t,
        // A TOML syntax error: nothing to walk.
        Err(_) => {
            return Parsed {
                file: None,
                problems: vec![syntax_problem(text, &first)],
                taint: Taint::default(),
            }
        }
    };
    let mut work = orig.clone();
    let mut problems = Vec::new();
    let mut taint = Taint::default();
    let mut cut: Vec<Vec<Seg>> = Vec::new();
    for _ in 0..MAX_ROUNDS {
        let err = match RawFile::deserialize(toml::de::Deserializer::from(work.clone())) {
            Ok(f) => {
                return Parsed {
                    file: Some(f),
                    problems,
                    taint,
                }
            }
            Err(e) => e,
        };
        let (message, span) = refine(&work, err);
        let Some(span) = span else {
            problems.push(Problem {
                span: 0..0,
                key: String::new(),
                message,
                hint: None,
            });
            break;
        };
        let missing = message.starts_with("missing field");
        let locate_path = |t: &Spanned<DeTable<'_>>| {
            let mut p = Vec::new();
            locate(t.get_ref(), span.start, &mut p);
            // "missing field" is about the table that lacks it.
            while missing && !p.is_empty() && !is_table(t.get_ref(), &p) {
                p.pop();
            }
            p
        };
        let orig_path = locate_path(&orig);
        let work_path = locate_path(&work);
        if work_path.is_empty() {
            // The error is about the whole file (e.g. a missing top-level key): stop here.
            problems.push(Problem {
                span,
                key: String::new(),
                message,
                hint: None,
            });
            break;
        }
        let cascade = missing && cut.iter().any(|c| c.starts_with(&orig_path));
        if !cascade {
            let (message, hint) = ops_words(&message, &orig_path);
            problems.push(Problem {
                span: span.clone(),
                key: path_string(&orig_path),
                message,
                hint,
            });
        }
        if !remove(work.get_mut(), &work_path) {
            break;
        }
        if orig_path.len() > 1 {
            taint
                .tables
                .insert(path_string(&orig_path[..orig_path.len() - 1]));
        }
        if let Some((Seg::Index(i), array)) = orig_path.split_last() {
            taint.elems.push((path_string(array), *i));
        }
        if let [Seg::Key(top), Seg::Key(name)] = orig_path.as_slice() {
            if NAMED.contains(&top.as_str()) {
                taint.names.insert(name.clone());
            }
        }
        cut.push(orig_path);
    }
    Parsed {
        file: None,
        problems,
        taint,
    }
}

/// The error's message and span, made precise where serde's is not: an untagged `RawMember`
/// error is about the whole `members` list; the element at fault (and in a table member, its
/// key) is found by trying each element.
fn refine(work: &Spanned<DeTable<'_>>, err: toml::de::Error) -> (String, Option<Range<usize>>) {
    let message = err.message().trim().to_string();
    let Some(span) = err.span() else {
        return (message, None);
    };
    if message.contains("untagged enum RawMember") {
        let mut p = Vec::new();
        locate(work.get_ref(), span.start, &mut p);
        if let Some(DeValue::Array(a)) = node(work.get_ref(), &p) {
            for e in a.iter() {
                let r = match e.get_ref() {
                    DeValue::String(_) => continue,
                    DeValue::Table(_) => crate::schema::RawMemberFull::deserialize(
                        toml::de::ValueDeserializer::from(e.clone()),
                    ),
                    _ => return (message, Some(e.span())),
                };
                if let Err(e2) = r {
                    return (
                        e2.message().trim().to_string(),
                        Some(e2.span().unwrap_or(e.span())),
                    );
                }
            }
        }
    }
    (message, Some(span))
}

fn syntax_problem(text: &str, e: &toml::de::Error) -> Problem {
    let span = e.span().unwrap_or(0..0);
    Problem {
        key: crate::error::key_path_at(text, span.start),
        span,
        message: e.message().trim().to_string(),
        hint: None,
    }
}

/// The last key name of a path (`ring_timeout` of `plans.a.groups[0].ring_timeout`).
fn leaf(path: &[Seg]) -> &str {
    path.iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k.as_str()),
            Seg::Index(_) => None,
        })
        .unwrap_or("the value")
}

/// Backquoted names in a serde message (`expected one of `a`, `b``).
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Serde's wording, with a hint in an operator's words.
fn ops_words(message: &str, path: &[Seg]) -> (String, Option<String>) {
    let name = leaf(path);
    if let Some(rest) = message.strip_prefix("unknown field ") {
        let names = backquoted(rest);
        let (bad, allowed) = match names.split_first() {
            Some((b, a)) => (*b, a),
            None => ("", &[][..]),
        };
        let close = allowed
            .iter()
            .map(|a| (edit_distance(bad, a), *a))
            .filter(|(d, a)| *d <= 2 || a.contains(bad) || bad.contains(a))
            .min();
        let mut sorted: Vec<&str> = allowed.to_vec();
        sorted.sort_unstable();
        let keys = if sorted.is_empty() {
            "this table takes no keys".to_string()
        } else {
            format!("keys here: {}", sorted.join(", "))
        };
        let hint = match close {
            Some((_, a)) => format!("did you mean `{a}`? {keys}; see docs/config.md"),
            None => format!("{keys}; see docs/config.md"),
        };
        return (format!("unknown key `{bad}`"), Some(hint));
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let names = backquoted(rest);
        if let Some((bad, allowed)) = names.split_first() {
            return (
                format!("{bad:?} is not a valid {name}"),
                Some(format!("{name} must be one of: {}", allowed.join(", "))),
            );
        }
    }
    if let Some(f) = message.strip_prefix("missing field ") {
        let f = f.trim_matches('`');
        return (
            format!("missing key `{f}`"),
            Some(format!("add `{f} = ...` here; see docs/config.md")),
        );
    }
    let hint = if message.contains("untagged enum DurationRaw") {
        Some(format!(
            "{name} must be a duration: \"20s\", \"500ms\", \"2m\", \"1h\", or a number of seconds (20)"
        ))
    } else if message.contains("untagged enum OneOrMany") {
        Some(format!(
            "{name} must be a string or a list of them, e.g. \"mon-fri\" or [\"mon\", \"wed\"]"
        ))
    } else if message.contains("untagged enum OnFailRaw") {
        Some(format!(
            "{name} must be a SIP code (480) or a target name in quotes (\"voicemail\")"
        ))
    } else if message.contains("untagged enum RawMember") {
        Some(
            "a member is a target name (\"desk-1\") or a table { target = \"desk-1\", weight = 2, ring_timeout = \"15s\" }"
                .to_string(),
        )
    } else if message.contains("expected i64")
        || message.contains("expected u16")
        || message.contains("expected u32")
        || message.contains("expected u64")
        || message.contains("expected an integer")
    {
        let example = quoted_number(message).unwrap_or_else(|| "1".into());
        Some(format!(
            "{name} must be a number without quotes, e.g. {example}"
        ))
    } else if message.contains("expected a boolean") {
        Some(format!("{name} must be true or false, without quotes"))
    } else if message.contains("expected a string") {
        Some(format!(
            "{name} must be text in double quotes, e.g. \"...\""
        ))
    } else if message.contains("expected a sequence") {
        Some(format!(
            "{name} must be a list in square brackets, e.g. [\"a\", \"b\"]"
        ))
    } else if message.contains("expected struct") || message.contains("expected a map") {
        Some(format!("{name} must be a table ([{name}] or {{ ... }})"))
    } else {
        None
    };
    (message.to_string(), hint)
}

/// `invalid type: string "1", expected i64` -> `1` when the quoted text is a number.
fn quoted_number(message: &str) -> Option<String> {
    let rest = message.strip_prefix("invalid type: string \"")?;
    let end = rest.find('"')?;
    let n = rest[..end].trim();
    n.parse::<i64>().ok().map(|v| v.to_string())
}
