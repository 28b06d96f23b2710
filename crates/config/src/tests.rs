use super::*;
use hotline_route::{normalize_called, resolve, CallContext, Decision, Live};

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

#[test]
fn default_config_compiles_and_routes() {
    let c = from_toml_str(DEFAULT_CONFIG, "hotline.toml", 1).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.settings.listen, vec!["127.0.0.1:5060".parse().unwrap_or_else(|_| unreachable!())]);
    assert_eq!(c.settings.cdr.dir, std::path::PathBuf::from("./cdr"));
    assert!(c.settings.trunk_for([127, 0, 0, 1].into()).is_some());
    assert_eq!(c.table.len(), 1);
    assert_eq!(c.table.generation(), 1);
    assert_eq!(c.table.hash().len(), 64);
    let live = Live::new();
    let n = normalize_called("4008001234").unwrap_or_else(|e| panic!("{e}"));
    let call = CallContext::new(n, "13807912345");
    let d = resolve(&c.table, &live, &call, ts("2026-10-01T01:30:00Z"));
    let Decision::Route(r) = d else { panic!("{d:?}") };
    let uris: Vec<&str> = r.hunt(&c.table).map(|(_, _, t)| t.uri.as_str()).collect();
    assert_eq!(uris, ["sip:1001@127.0.0.1:5070", "sip:1002@127.0.0.1:5071"]);
    let timeouts: Vec<u64> = r.hunt(&c.table).map(|(_, m, _)| m.ring_timeout.as_secs()).collect();
    assert_eq!(timeouts, [20, 20]);
    assert_eq!(r.caller_region.map(|g| g.city), Some("南昌"));
}
