//! `explain`: a step-by-step account of what [`crate::resolve`] would do, without changing
//! live state.

use jiff::Timestamp;
use serde::Serialize;

use crate::live::Live;
use crate::resolve::CallContext;
use crate::table::RouteTable;

/// The account of one routing decision.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The called number.
    pub number: String,
}

impl std::fmt::Display for Explanation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "number {}", self.number)
    }
}

/// Explain the routing of `call` at `now`. Pure: live state is read, never written.
pub fn explain(table: &RouteTable, live: &Live, call: &CallContext<'_>, now: Timestamp) -> Explanation {
    let _ = (table, live, now);
    Explanation {
        number: call.called.to_string(),
    }
}
