//! Key names. Everything Hotline writes starts with `hl:`; keys one script touches together
//! share a hash tag (`{...}`), so they stay in one slot.

/// Lease set of a target: sorted set call-id -> lease expiry (ms).
pub fn lease(target: &str) -> String {
    format!("hl:lease:{{{target}}}")
}
/// Counters of a target (hash: `calls`, `last`).
pub fn target_stats(target: &str) -> String {
    format!("hl:tstat:{{{target}}}")
}
/// Distribution cursor of a group (`plan/group`).
pub fn cursor(group: &str) -> String {
    format!("hl:rr:{group}")
}
/// Rate window of a caller for one number (`number` 0: over all numbers).
pub fn rate(caller_key: u64, number: u64) -> String {
    if number == 0 {
        format!("hl:rate:{{{caller_key:016x}}}:all")
    } else {
        format!("hl:rate:{{{caller_key:016x}}}:{number}")
    }
}
/// Calls-per-second counters of a trunk (one key per second below this prefix).
pub fn trunk_cps(trunk: &str) -> String {
    format!("hl:cps:{{{trunk}}}")
}
/// The lease "target" of a trunk's `max_calls` (leases like a target's slots).
pub fn trunk_lease_name(trunk: &str) -> String {
    format!("trunk:{trunk}")
}
/// Claim of one INVITE (Call-ID, From-tag, CSeq number).
pub fn invite(call_id: &str, from_tag: &str, cseq: u32) -> String {
    format!("hl:inv:{call_id}:{from_tag}:{cseq}")
}
/// Prefix of the nodes' heartbeat keys.
pub const NODE_PREFIX: &str = "hl:node:";
/// Heartbeat of a node (hash, expires unless renewed).
pub fn node(name: &str) -> String {
    format!("{NODE_PREFIX}{name}")
}
/// Every node ever seen: sorted set name -> last heartbeat (ms).
pub const NODES: &str = "hl:nodes";
/// An answered call (hash: owner, record, caller_tag, fence).
pub fn dialog(call_id: &str) -> String {
    format!("hl:dlg:{{{call_id}}}")
}
/// A prepaid number's shared account (hash: `used:MONTH:NODE`, `res:CALL-ID`,
/// `exp:CALL-ID`; see `lua/pp_reserve.lua`).
pub fn prepaid(number: &str) -> String {
    format!("hl:pp:{{{number}}}")
}
/// A prepaid call's settlement mark (settled once per Call-ID).
pub fn prepaid_settled(number: &str, call_id: &str) -> String {
    format!("hl:pp:{{{number}}}:done:{call_id}")
}
/// Prefix of the sets of calls each node owns (`hl:dlgs:NODE`).
pub const OWNED_PREFIX: &str = "hl:dlgs:";
/// The answered calls a node owns (set of call-ids): what a take-over scans.
pub fn owned(node: &str) -> String {
    format!("{OWNED_PREFIX}{node}")
}
/// Prefix of the call hashes (`hl:dlg:{CALL-ID}`).
pub const DIALOG_PREFIX: &str = "hl:dlg:";
/// Mark of a call a BYE ended on another node than its owner (value: that node).
pub fn dialog_ended(call_id: &str) -> String {
    format!("hl:dlg:{{{call_id}}}:ended")
}
