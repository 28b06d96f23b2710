//! [`HotlineConfig`]: the one place where a test's intent becomes Hotline TOML.
//!
//! Tests say *what* they need (targets, numbers hunted over them, short SIP timers); this module
//! knows the config schema (docs/config.md). When the schema changes, adapt [`HotlineConfig::to_toml`]
//! and nothing else. The CDR directory is written as [`crate::hotline::CDR_DIR_PLACEHOLDER`],
//! which [`crate::Hotline::spawn`] replaces with its per-test directory; the listen address
//! defaults to `127.0.0.1:0` (an ephemeral port, same for UDP and TCP).

use std::fmt::Write as _;

use crate::hotline::CDR_DIR_PLACEHOLDER;

/// A call target.
#[derive(Debug, Clone)]
pub struct Target {
    /// Config name of the target.
    pub name: String,
    /// Its SIP URI (e.g. from [`crate::SippProcess::uri`]).
    pub uri: String,
    /// Concurrency limit, if any.
    pub max_concurrent: Option<u32>,
}

/// A hunt group inside a plan.
#[derive(Debug, Clone)]
pub struct Group {
    /// `"sequential"` or `"simultaneous"`.
    pub mode: String,
    /// Ring timeout per member, e.g. `"2s"`.
    pub ring_timeout: Option<String>,
    /// Target names in order.
    pub members: Vec<String>,
}

/// A routing plan.
#[derive(Debug, Clone)]
pub struct Plan {
    pub name: String,
    pub groups: Vec<Group>,
    /// Extra `key = value` lines for the plan table (e.g. `wait_cap = "5s"`).
    pub extra: Vec<String>,
}

impl Plan {
    /// An empty plan `name` (add groups with [`Plan::group`], plan keys with [`Plan::key`]).
    pub fn new(name: &str) -> Plan {
        Plan {
            name: name.into(),
            groups: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds a group: `mode` is `"sequential"` or `"simultaneous"`, `ring_timeout` e.g. `"2s"`,
    /// `members` target names in order.
    pub fn group(mut self, mode: &str, ring_timeout: &str, members: &[&str]) -> Plan {
        self.groups.push(Group {
            mode: mode.into(),
            ring_timeout: Some(ring_timeout.into()),
            members: members.iter().map(|m| m.to_string()).collect(),
        });
        self
    }

    /// Adds a plan key as a raw TOML line, e.g. `key("wait_cap = \"2s\"")`.
    pub fn key(mut self, line: &str) -> Plan {
        self.extra.push(line.into());
        self
    }
}

/// A carrier trunk calls may come from (`[[server.trunks]]`).
#[derive(Debug, Clone)]
pub struct Trunk {
    pub name: String,
    /// CIDRs or addresses, e.g. `"127.0.0.1/32"`.
    pub sources: Vec<String>,
    /// Whether its P-Asserted-Identity is believed.
    pub trusted: bool,
}

/// A 400 number.
#[derive(Debug, Clone)]
pub struct Number {
    pub number: String,
    pub plan: String,
    pub suspended: bool,
}

/// A test configuration; render with [`HotlineConfig::to_toml`].
#[derive(Debug, Clone)]
pub struct HotlineConfig {
    pub listen: String,
    /// Further listen addresses, after `listen`.
    pub listen_more: Vec<String>,
    pub targets: Vec<Target>,
    pub plans: Vec<Plan>,
    pub numbers: Vec<Number>,
    /// SIP timer T1 (e.g. `"100ms"`), `None` = Hotline's default.
    pub t1: Option<String>,
    /// Default ring timeout for plans made by [`HotlineConfig::number`].
    pub ring_timeout: String,
    /// Raw TOML appended verbatim (for features the template does not model yet).
    pub raw: String,
    /// Carrier trunks; empty = one trusted trunk `loopback` for `127.0.0.1`.
    pub trunks: Vec<Trunk>,
    /// Admin endpoint address (`"127.0.0.1:0"` = ephemeral); `None` = `"off"`.
    pub admin: Option<String>,
    /// Extra `key = value` lines of `[server.sip]` (e.g. `tcp_idle_timeout = "1s"`).
    pub sip_settings: Vec<String>,
}

impl Default for HotlineConfig {
    fn default() -> Self {
        HotlineConfig {
            listen: "127.0.0.1:0".into(),
            listen_more: Vec::new(),
            targets: Vec::new(),
            plans: Vec::new(),
            numbers: Vec::new(),
            t1: None,
            ring_timeout: "5s".into(),
            raw: String::new(),
            trunks: Vec::new(),
            admin: None,
            sip_settings: Vec::new(),
        }
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl HotlineConfig {
    /// An empty config listening on `127.0.0.1:0`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a target `name` at `uri`.
    pub fn target(mut self, name: &str, uri: &str) -> Self {
        self.targets.push(Target {
            name: name.into(),
            uri: uri.into(),
            max_concurrent: None,
        });
        self
    }

    /// Adds a target with a concurrency limit.
    pub fn target_limited(mut self, name: &str, uri: &str, max_concurrent: u32) -> Self {
        self.targets.push(Target {
            name: name.into(),
            uri: uri.into(),
            max_concurrent: Some(max_concurrent),
        });
        self
    }

    /// Adds a plan.
    pub fn plan(mut self, plan: Plan) -> Self {
        self.plans.push(plan);
        self
    }

    /// Adds 400 number `number`, hunted sequentially over `targets` (names) with the default
    /// ring timeout, via its own plan `p<number>`.
    pub fn number(mut self, number: &str, targets: &[&str]) -> Self {
        let plan = format!("p{number}");
        self.plans.push(Plan {
            name: plan.clone(),
            groups: vec![Group {
                mode: "sequential".into(),
                ring_timeout: Some(self.ring_timeout.clone()),
                members: targets.iter().map(|t| t.to_string()).collect(),
            }],
            extra: Vec::new(),
        });
        self.numbers.push(Number {
            number: number.into(),
            plan,
            suspended: false,
        });
        self
    }

    /// Adds 400 number `number` routed by an existing plan.
    pub fn number_with_plan(mut self, number: &str, plan: &str) -> Self {
        self.numbers.push(Number {
            number: number.into(),
            plan: plan.into(),
            suspended: false,
        });
        self
    }

    /// Marks the last added number suspended.
    pub fn suspended(mut self) -> Self {
        if let Some(n) = self.numbers.last_mut() {
            n.suspended = true;
        }
        self
    }

    /// Sets SIP timer T1 (e.g. `"100ms"`); T2/T4 follow Hotline's defaults.
    pub fn t1(mut self, t1: &str) -> Self {
        self.t1 = Some(t1.into());
        self
    }

    /// Sets the ring timeout used by later [`HotlineConfig::number`] calls.
    pub fn ring_timeout(mut self, t: &str) -> Self {
        self.ring_timeout = t.into();
        self
    }

    /// Adds a carrier trunk (the first call replaces the default trusted `loopback` trunk).
    pub fn trunk(mut self, name: &str, sources: &[&str], trusted: bool) -> Self {
        self.trunks.push(Trunk {
            name: name.into(),
            sources: sources.iter().map(|s| s.to_string()).collect(),
            trusted,
        });
        self
    }

    /// Turns the admin endpoint on at an ephemeral loopback port (see
    /// [`crate::Hotline::metrics`]).
    pub fn with_admin(mut self) -> Self {
        self.admin = Some("127.0.0.1:0".into());
        self
    }

    /// Listens on `addr` (e.g. `"[::1]:0"`) instead of `127.0.0.1:0`.
    pub fn listen(mut self, addr: &str) -> Self {
        self.listen = addr.into();
        self
    }

    /// Listens on every address of `addrs` (the first is what `Hotline::sip_addr` reports).
    pub fn listen_on(mut self, addrs: &[&str]) -> Self {
        if let Some((first, rest)) = addrs.split_first() {
            self.listen = (*first).into();
            self.listen_more = rest.iter().map(|a| (*a).into()).collect();
        }
        self
    }

    /// Adds a `key = value` line to `[server.sip]`, e.g. `sip_setting("max_message_bytes", "4096")`
    /// (the value is written as given: quote strings yourself).
    pub fn sip_setting(mut self, key: &str, value: &str) -> Self {
        self.sip_settings.push(format!("{key} = {value}"));
        self
    }

    /// Appends raw TOML.
    pub fn raw(mut self, toml: &str) -> Self {
        self.raw.push_str(toml);
        self.raw.push('\n');
        self
    }

    /// Renders the config (schema: docs/config.md).
    pub fn to_toml(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "[server]");
        let listen: Vec<String> = std::iter::once(&self.listen)
            .chain(&self.listen_more)
            .map(|a| quote(a))
            .collect();
        let _ = writeln!(s, "listen = [{}]", listen.join(", "));
        // Parallel instances must not fight over the admin port: off, or an ephemeral port.
        match &self.admin {
            Some(a) => {
                let _ = writeln!(s, "admin = {}", quote(a));
            }
            None => {
                let _ = writeln!(s, "admin = \"off\"");
            }
        }
        let _ = writeln!(s);
        if self.t1.is_some() || !self.sip_settings.is_empty() {
            let _ = writeln!(s, "[server.sip]");
            if let Some(t1) = &self.t1 {
                let _ = writeln!(s, "t1 = {}", quote(t1));
            }
            for line in &self.sip_settings {
                let _ = writeln!(s, "{line}");
            }
            let _ = writeln!(s);
        }
        let _ = writeln!(
            s,
            "[server.cdr]\ndir = {}\nformat = \"csv\"\n",
            quote(CDR_DIR_PLACEHOLDER)
        );
        if self.trunks.is_empty() {
            let _ = writeln!(
                s,
                "[[server.trunks]]\nname = \"loopback\"\nsources = [\"127.0.0.1\"]\ntrusted = true\n"
            );
        }
        for t in &self.trunks {
            let sources: Vec<String> = t.sources.iter().map(|x| quote(x)).collect();
            let _ = writeln!(
                s,
                "[[server.trunks]]\nname = {}\nsources = [{}]\ntrusted = {}\n",
                quote(&t.name),
                sources.join(", "),
                t.trusted
            );
        }
        let _ = writeln!(s, "[companies.test]\nname = \"Test Co\"\n");
        for t in &self.targets {
            let _ = writeln!(s, "[targets.{}]\nuri = {}", quote(&t.name), quote(&t.uri));
            if let Some(m) = t.max_concurrent {
                let _ = writeln!(s, "max_concurrent = {m}");
            }
            let _ = writeln!(s);
        }
        for p in &self.plans {
            let _ = writeln!(s, "[plans.{}]", quote(&p.name));
            for line in &p.extra {
                let _ = writeln!(s, "{line}");
            }
            for g in &p.groups {
                let members: Vec<String> = g.members.iter().map(|m| quote(m)).collect();
                let _ = writeln!(s, "[[plans.{}.groups]]", quote(&p.name));
                let _ = writeln!(s, "mode = {}", quote(&g.mode));
                if let Some(rt) = &g.ring_timeout {
                    let _ = writeln!(s, "ring_timeout = {}", quote(rt));
                }
                let _ = writeln!(s, "members = [{}]", members.join(", "));
            }
            let _ = writeln!(s);
        }
        for n in &self.numbers {
            let _ = writeln!(
                s,
                "[numbers.{}]\ncompany = \"test\"\nplan = {}",
                quote(&n.number),
                quote(&n.plan)
            );
            if n.suspended {
                let _ = writeln!(s, "status = \"suspended\"");
            }
            let _ = writeln!(s);
        }
        s.push_str(&self.raw);
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_targets_plans_numbers() {
        let toml = HotlineConfig::new()
            .t1("100ms")
            .ring_timeout("2s")
            .target("a", "sip:1001@127.0.0.1:5070")
            .target_limited("b", "sip:1002@127.0.0.1:5071", 1)
            .number("4008001234", &["a", "b"])
            .number("4008009999", &["a"])
            .suspended()
            .to_toml();
        assert!(toml.contains("listen = [\"127.0.0.1:0\"]"));
        assert!(toml.contains(&format!("dir = \"{CDR_DIR_PLACEHOLDER}\"")));
        assert!(
            toml.contains("[targets.\"b\"]\nuri = \"sip:1002@127.0.0.1:5071\"\nmax_concurrent = 1")
        );
        assert!(toml.contains("members = [\"a\", \"b\"]"));
        assert!(toml.contains("ring_timeout = \"2s\""));
        assert!(toml.contains("[numbers.\"4008009999\"]\ncompany = \"test\"\nplan = \"p4008009999\"\nstatus = \"suspended\""));
        assert!(toml.contains("t1 = \"100ms\""));
        assert!(toml.contains("name = \"loopback\"\nsources = [\"127.0.0.1\"]\ntrusted = true"));
    }

    #[test]
    fn renders_trunks_and_built_plans() {
        let toml = HotlineConfig::new()
            .trunk("trusted", &["127.0.0.1/32"], true)
            .trunk("carrier", &["127.0.0.2/32"], false)
            .target("a", "sip:1001@127.0.0.1:5070")
            .target("b", "sip:1002@127.0.0.1:5071")
            .plan(
                Plan::new("both")
                    .key("wait_cap = \"3s\"")
                    .group("simultaneous", "1s", &["a", "b"])
                    .group("sequential", "2s", &["b"]),
            )
            .number_with_plan("4008001234", "both")
            .to_toml();
        assert!(!toml.contains("\"loopback\""));
        assert!(toml.contains("admin = \"off\""));
        assert!(HotlineConfig::new()
            .with_admin()
            .to_toml()
            .contains("admin = \"127.0.0.1:0\""));
        assert!(toml.contains("name = \"trusted\"\nsources = [\"127.0.0.1/32\"]\ntrusted = true"));
        assert!(toml.contains("name = \"carrier\"\nsources = [\"127.0.0.2/32\"]\ntrusted = false"));
        assert!(toml.contains("[plans.\"both\"]\nwait_cap = \"3s\"\n[[plans.\"both\".groups]]\nmode = \"simultaneous\"\nring_timeout = \"1s\"\nmembers = [\"a\", \"b\"]"));
        assert!(toml.contains("mode = \"sequential\"\nring_timeout = \"2s\"\nmembers = [\"b\"]"));
    }

    #[test]
    fn renders_sip_settings_and_listen() {
        let toml = HotlineConfig::new()
            .listen("[::1]:0")
            .t1("100ms")
            .sip_setting("tcp_idle_timeout", "\"1s\"")
            .to_toml();
        assert!(toml.contains("listen = [\"[::1]:0\"]"));
        assert!(toml.contains("[server.sip]\nt1 = \"100ms\"\ntcp_idle_timeout = \"1s\"\n"));
        assert_eq!(toml.matches("[server.sip]").count(), 1);
        let only = HotlineConfig::new()
            .sip_setting("max_message_bytes", "4096")
            .to_toml();
        assert!(only.contains("[server.sip]\nmax_message_bytes = 4096\n"));
    }
}
