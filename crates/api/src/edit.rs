//! The edits the API makes to a company's TOML document. Pure: a document in, the same
//! document changed in place; what is not touched keeps its formatting and comments
//! (`toml_edit`). Whether the result is a valid config is for the compiler to say.

use toml_edit::{value, Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

use crate::model::{GroupBody, ListBody, RuleBody, ScreeningBody};

/// How a target is reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reach {
    Uri(String),
    Phone { number: String, gateway: String },
}

/// `[targets]` (created as a dotted-header parent, so entries print as `[targets.NAME]`).
fn section<'a>(doc: &'a mut DocumentMut, name: &str) -> &'a mut Table {
    let item = doc.as_table_mut().entry(name).or_insert_with(|| {
        let mut t = Table::new();
        t.set_implicit(true);
        Item::Table(t)
    });
    if !item.is_table() {
        // An inline `targets = { ... }`: turn it into a table (keeps its entries).
        let t = match std::mem::take(item) {
            Item::Value(Value::InlineTable(it)) => it.into_table(),
            _ => Table::new(),
        };
        *item = Item::Table(t);
    }
    match item {
        Item::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

fn entry_table<'a>(parent: &'a mut Table, key: &str) -> &'a mut Table {
    let item = parent
        .entry(key)
        .or_insert_with(|| Item::Table(Table::new()));
    if !item.is_table() {
        let t = match std::mem::take(item) {
            Item::Value(Value::InlineTable(it)) => it.into_table(),
            _ => Table::new(),
        };
        *item = Item::Table(t);
    }
    match item {
        Item::Table(t) => t,
        _ => unreachable!("made a table above"),
    }
}

fn strings(v: &[String]) -> Value {
    let mut a = Array::new();
    for s in v {
        a.push(s.as_str());
    }
    Value::Array(a)
}

/// Create or change `[targets.NAME]`; its other keys (forward_on, caller_id ...) stay.
pub fn set_target(doc: &mut DocumentMut, name: &str, reach: &Reach, max_concurrent: Option<i64>) {
    let t = entry_table(section(doc, "targets"), name);
    match reach {
        Reach::Uri(u) => {
            t.remove("number");
            t.remove("gateway");
            t["uri"] = value(u.as_str());
        }
        Reach::Phone { number, gateway } => {
            t.remove("uri");
            t["number"] = value(number.as_str());
            t["gateway"] = value(gateway.as_str());
        }
    }
    match max_concurrent {
        Some(n) => t["max_concurrent"] = value(n),
        None => {
            t.remove("max_concurrent");
        }
    }
}

fn member_target(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.value()),
        Value::InlineTable(t) => t.get("target").and_then(|t| t.as_str()),
        _ => None,
    }
}

/// Remove `[targets.NAME]` and every membership of it in the document's plans. Returns
/// whether the target was there. A group left empty is removed with it (a plan left without
/// groups is the compiler's to report).
pub fn remove_target(doc: &mut DocumentMut, name: &str) -> bool {
    let had = doc
        .get_mut("targets")
        .and_then(Item::as_table_like_mut)
        .is_some_and(|t| t.remove(name).is_some());
    if let Some(plans) = doc.get_mut("plans").and_then(Item::as_table_like_mut) {
        for (_, plan) in plans.iter_mut() {
            let Some(groups) = plan
                .as_table_like_mut()
                .and_then(|p| p.get_mut("groups"))
                .and_then(Item::as_array_of_tables_mut)
            else {
                continue;
            };
            for g in groups.iter_mut() {
                if let Some(m) = g.get_mut("members").and_then(Item::as_array_mut) {
                    m.retain(|v| member_target(v) != Some(name));
                }
            }
            groups.retain(|g| {
                g.get("members")
                    .and_then(Item::as_array)
                    .map_or(true, |m| !m.is_empty())
            });
        }
    }
    had
}

fn member_value(target: &str, ring: Option<&str>, weight: Option<i64>) -> Value {
    if ring.is_none() && weight.is_none() {
        return Value::from(target);
    }
    let mut t = InlineTable::new();
    t.insert("target", Value::from(target));
    if let Some(r) = ring {
        t.insert("ring_timeout", Value::from(r));
    }
    if let Some(w) = weight {
        t.insert("weight", Value::from(w));
    }
    Value::InlineTable(t)
}

/// Append `target` to group `group` of plan `plan` (the plan and the group must exist).
pub fn bind(
    doc: &mut DocumentMut,
    plan: &str,
    group: usize,
    target: &str,
    ring: Option<&str>,
) -> Result<(), String> {
    let groups = doc
        .get_mut("plans")
        .and_then(Item::as_table_like_mut)
        .and_then(|p| p.get_mut(plan))
        .and_then(Item::as_table_like_mut)
        .and_then(|p| p.get_mut("groups"))
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| format!("plan {plan:?} has no groups in this file"))?;
    let n = groups.len();
    let g = groups
        .get_mut(group)
        .ok_or_else(|| format!("plan {plan:?} has {n} group(s), there is no group {group}"))?;
    let members = g
        .entry("members")
        .or_insert_with(|| value(Array::new()))
        .as_array_mut()
        .ok_or_else(|| format!("plans.{plan}.groups[{group}].members is not a list"))?;
    members.retain(|v| member_target(v) != Some(target));
    members.push_formatted(member_value(target, ring, None).decorated(" ", ""));
    Ok(())
}

/// Replace the groups of `[plans.NAME]` (created when missing); the plan's other keys stay.
pub fn set_groups(doc: &mut DocumentMut, plan: &str, groups: &[GroupBody]) {
    let p = entry_table(section(doc, "plans"), plan);
    let mut aot = ArrayOfTables::new();
    for g in groups {
        let mut t = Table::new();
        if let Some(n) = &g.name {
            t["name"] = value(n.as_str());
        }
        if let Some(m) = &g.mode {
            t["mode"] = value(m.as_str());
        }
        if let Some(s) = &g.strategy {
            t["strategy"] = value(s.as_str());
        }
        if let Some(r) = &g.ring_timeout {
            t["ring_timeout"] = value(r.as_str());
        }
        let mut members = Array::new();
        for m in &g.members {
            members.push(member_value(&m.target, m.ring_timeout.as_deref(), m.weight));
        }
        t["members"] = value(members);
        aot.push(t);
    }
    p.insert("groups", Item::ArrayOfTables(aot));
}

/// `numbers."N"`: the number's table in this document, if it is here.
fn number_table<'a>(doc: &'a mut DocumentMut, number: &str) -> Option<&'a mut Table> {
    let item = doc
        .get_mut("numbers")
        .and_then(Item::as_table_mut)?
        .get_mut(number)?;
    if !item.is_table() {
        let t = match std::mem::take(item) {
            Item::Value(Value::InlineTable(it)) => it.into_table(),
            other => {
                *item = other;
                return None;
            }
        };
        *item = Item::Table(t);
    }
    item.as_table_mut()
}

/// Set a number's default plan and replace its rules.
pub fn set_routing(
    doc: &mut DocumentMut,
    number: &str,
    plan: &str,
    rules: &[RuleBody],
) -> Result<(), String> {
    let n = number_table(doc, number).ok_or_else(|| format!("{number} is not in this file"))?;
    n["plan"] = value(plan);
    let mut aot = ArrayOfTables::new();
    for r in rules {
        let mut t = Table::new();
        if let Some(x) = &r.name {
            t["name"] = value(x.as_str());
        }
        if let Some(x) = &r.weekdays {
            t["weekdays"] = value(strings(x));
        }
        if let Some(x) = &r.day {
            t["day"] = value(x.as_str());
        }
        if let Some(x) = &r.time {
            t["time"] = value(strings(x));
        }
        if let Some(x) = &r.dates {
            t["dates"] = value(strings(x));
        }
        if let Some(x) = &r.region {
            t["region"] = value(strings(x));
        }
        if let Some(x) = &r.list {
            t["list"] = value(strings(x));
        }
        if let Some(x) = r.vip {
            t["vip"] = value(x);
        }
        if let Some(x) = &r.key {
            let mut a = Array::new();
            for k in x {
                a.push(*k);
            }
            t["key"] = value(a);
        }
        t["plan"] = value(r.plan.as_str());
        aot.push(t);
    }
    if rules.is_empty() {
        n.remove("rules");
    } else {
        n.insert("rules", Item::ArrayOfTables(aot));
    }
    Ok(())
}

fn list_inline(l: &ListBody) -> InlineTable {
    let mut t = InlineTable::new();
    if let Some(v) = l.vip {
        t.insert("vip", Value::from(v));
    }
    for (k, v) in [
        ("numbers", &l.numbers),
        ("prefixes", &l.prefixes),
        ("area_codes", &l.area_codes),
        ("regions", &l.regions),
    ] {
        if !v.is_empty() {
            t.insert(k, strings(v));
        }
    }
    t
}

/// Replace a number's `screening.blacklist` / `whitelist` / `whitelist_only` (the keys sent;
/// the screening's other keys, e.g. harassment limits, stay).
pub fn set_screening(doc: &mut DocumentMut, number: &str, s: &ScreeningBody) -> Result<(), String> {
    let n = number_table(doc, number).ok_or_else(|| format!("{number} is not in this file"))?;
    let sc = entry_table(n, "screening");
    for (k, l) in [("blacklist", &s.blacklist), ("whitelist", &s.whitelist)] {
        match l {
            Some(l) if !list_is_empty(l) => sc[k] = value(list_inline(l)),
            Some(_) => {
                sc.remove(k);
            }
            None => {}
        }
    }
    if let Some(w) = s.whitelist_only {
        if w {
            sc["whitelist_only"] = value(true);
        } else {
            sc.remove("whitelist_only");
        }
    }
    if sc.is_empty() {
        n.remove("screening");
    }
    Ok(())
}

fn list_is_empty(l: &ListBody) -> bool {
    l.numbers.is_empty() && l.prefixes.is_empty() && l.area_codes.is_empty() && l.regions.is_empty()
}

/// Create or replace `[lists.NAME]`.
pub fn set_list(doc: &mut DocumentMut, name: &str, l: &ListBody) {
    let t = entry_table(section(doc, "lists"), name);
    t.clear();
    if let Some(v) = l.vip {
        t["vip"] = value(v);
    }
    for (k, v) in [
        ("numbers", &l.numbers),
        ("prefixes", &l.prefixes),
        ("area_codes", &l.area_codes),
        ("regions", &l.regions),
    ] {
        if !v.is_empty() {
            t[k] = value(strings(v));
        }
    }
}

/// Remove `[lists.NAME]`; whether it was there.
pub fn remove_list(doc: &mut DocumentMut, name: &str) -> bool {
    doc.get_mut("lists")
        .and_then(Item::as_table_like_mut)
        .is_some_and(|t| t.remove(name).is_some())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MemberBody;

    const ACME: &str = "# Acme's file: kept by ops and by the API\n\
[companies.acme]\nname = \"Acme\"\n\n\
# the PBX\n[targets.acme-pbx]\nuri = \"sip:400@10.0.0.5\"  # trunk\n\n\
[plans.acme-main]\nadvance_on = [\"busy\"]  # keep me\n\
[[plans.acme-main.groups]]\nname = \"pbx\"\nmembers = [\"acme-pbx\"]\nring_timeout = \"30s\"\n\n\
[numbers.\"4008001234\"]\ncompany = \"acme\"\nplan = \"acme-main\"\n";

    fn doc() -> DocumentMut {
        ACME.parse().unwrap_or_default()
    }

    #[test]
    fn bind_keeps_comments_and_appends() -> Result<(), String> {
        let mut d = doc();
        set_target(
            &mut d,
            "acme-mobile",
            &Reach::Phone {
                number: "13800138000".into(),
                gateway: "gw".into(),
            },
            Some(1),
        );
        bind(&mut d, "acme-main", 0, "acme-mobile", Some("15s"))?;
        let s = d.to_string();
        assert!(
            s.contains("# Acme's file: kept by ops and by the API"),
            "{s}"
        );
        assert!(s.contains("uri = \"sip:400@10.0.0.5\"  # trunk"), "{s}");
        assert!(s.contains("advance_on = [\"busy\"]  # keep me"), "{s}");
        assert!(
            s.contains(
                "members = [\"acme-pbx\", { target = \"acme-mobile\", ring_timeout = \"15s\" }]"
            ),
            "{s}"
        );
        assert!(
            s.contains("[targets.acme-mobile]\nnumber = \"13800138000\"\ngateway = \"gw\"\nmax_concurrent = 1"),
            "{s}"
        );
        // Binding again does not duplicate it.
        bind(&mut d, "acme-main", 0, "acme-mobile", None)?;
        assert_eq!(d.to_string().matches("acme-mobile\"").count(), 1, "{}", d);
        assert!(bind(&mut d, "acme-main", 3, "acme-mobile", None).is_err());
        assert!(bind(&mut d, "nope", 0, "acme-mobile", None).is_err());
        Ok(())
    }

    #[test]
    fn unbind_removes_memberships_and_empty_groups() {
        let mut d = doc();
        assert!(remove_target(&mut d, "acme-pbx"));
        let s = d.to_string();
        assert!(!s.contains("acme-pbx"), "{s}");
        assert!(!s.contains("[[plans.acme-main.groups]]"), "{s}");
        assert!(s.contains("advance_on = [\"busy\"]  # keep me"), "{s}");
        assert!(!remove_target(&mut d, "acme-pbx"));
    }

    #[test]
    fn groups_rules_lists_screening() -> Result<(), String> {
        let mut d = doc();
        set_groups(
            &mut d,
            "acme-main",
            &[GroupBody {
                name: Some("desks".into()),
                mode: None,
                strategy: Some("round_robin".into()),
                ring_timeout: Some("20s".into()),
                members: vec![
                    MemberBody {
                        target: "b".into(),
                        ring_timeout: None,
                        weight: None,
                    },
                    MemberBody {
                        target: "a".into(),
                        ring_timeout: Some("5s".into()),
                        weight: None,
                    },
                ],
            }],
        );
        let rule = RuleBody {
            name: Some("office".into()),
            plan: "acme-main".into(),
            weekdays: None,
            time: Some(vec!["09:00-18:00".into()]),
            day: Some("workday".into()),
            dates: None,
            region: None,
            list: None,
            vip: None,
            key: None,
        };
        set_routing(&mut d, "4008001234", "acme-main", &[rule])?;
        set_list(
            &mut d,
            "acme-vip",
            &ListBody {
                vip: Some(true),
                numbers: vec!["13900000001".into()],
                ..ListBody::default()
            },
        );
        set_screening(
            &mut d,
            "4008001234",
            &ScreeningBody {
                blacklist: Some(ListBody {
                    prefixes: vec!["1700".into()],
                    ..ListBody::default()
                }),
                whitelist: None,
                whitelist_only: None,
            },
        )?;
        let s = d.to_string();
        let parsed: toml::Table = toml::from_str(&s).map_err(|e| e.to_string())?;
        let g = &parsed["plans"]["acme-main"]["groups"][0];
        assert_eq!(g["strategy"].as_str(), Some("round_robin"));
        assert_eq!(g["members"][0].as_str(), Some("b"));
        assert_eq!(g["members"][1]["ring_timeout"].as_str(), Some("5s"));
        assert_eq!(
            parsed["plans"]["acme-main"]["advance_on"][0].as_str(),
            Some("busy")
        );
        let n = &parsed["numbers"]["4008001234"];
        assert_eq!(n["rules"][0]["time"][0].as_str(), Some("09:00-18:00"));
        assert_eq!(
            n["screening"]["blacklist"]["prefixes"][0].as_str(),
            Some("1700")
        );
        assert_eq!(parsed["lists"]["acme-vip"]["vip"].as_bool(), Some(true));
        assert!(s.contains("# the PBX"), "{s}");
        assert!(set_routing(&mut d, "4009999999", "x", &[]).is_err());
        assert!(remove_list(&mut d, "acme-vip"));
        Ok(())
    }
}
