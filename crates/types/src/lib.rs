//! Domain values that more than one Hotline crate speaks of, in one home: the SIP core
//! (`hotline-sip`) and the routing library (`hotline-route`) must not depend on each other,
//! so a value both need lives here, a leaf crate with no dependencies (serde only with the
//! `serde` feature, for the routing library's config and JSON).
#![forbid(unsafe_code)]

/// Transport of a SIP hop: towards a target (`;transport=tcp` on its URI, `transport = "tcp"`
/// on a gateway) or of a peer a message came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "snake_case")
)]
pub enum Transport {
    /// UDP (the default).
    Udp,
    /// TCP.
    Tcp,
}

impl Transport {
    /// `udp` or `tcp` (config, URIs' `transport=` parameter, logs).
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }

    /// `UDP` or `TCP`, as a Via header writes it (RFC 3261 §20.42).
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
        }
    }

    /// Whether the transport delivers reliably (RFC 3261 §17: no retransmission timers).
    pub fn is_reliable(self) -> bool {
        self == Transport::Tcp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(Transport::Udp.as_str(), "udp");
        assert_eq!(Transport::Tcp.via_name(), "TCP");
        assert!(Transport::Tcp.is_reliable() && !Transport::Udp.is_reliable());
    }
}
