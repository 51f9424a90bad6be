//! One configured cluster member ([`NodeSpec`]) and the checks a membership list must pass
//! before a ring is built from it.
//!
//! The checks exist because placement is derived from names: two members with the same name (or,
//! in ketama mode, the same hashed string) would get identical points and silently share or
//! shadow each other's keys, so such a list is refused instead of being placed.

use serde::Deserialize;

use super::HashKind;
use crate::error::Error;

/// The port libmemcached and twemproxy leave out of a ketama point string.
pub(crate) const KETAMA_DEFAULT_PORT: u16 = 11211;

/// One member of the cluster, as configured (`[[nodes]]` in the config file).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeSpec {
    /// `host:port` to connect to (IPv6 hosts in brackets: `[::1]:11211`).
    pub addr: String,
    /// The identity hashed onto the ring; defaults to `addr`. Keeping the name while changing
    /// the address keeps the node's ring positions (the new address starts cold, though).
    #[serde(default)]
    pub name: Option<String>,
    /// Relative share of the keyspace: an xxh3 node gets `vnodes × weight` points, a ketama
    /// node its share of `160 × node count` points.
    #[serde(default = "one")]
    pub weight: u32,
    /// The name the node's TLS certificate is checked against when neither `name` nor `addr`
    /// carries it: the `dns+` host a discovered node was found under (its address is a pod
    /// IP, its name that address). Set by discovery, not a config key; see
    /// [`NodeSpec::tls_name`].
    #[serde(skip)]
    pub tls_host: Option<String>,
    /// The failure domain the node runs in (a cloud availability zone, a rack). When the
    /// members have zones, a key's copies go to distinct zones (docs/placement.md, "Zones");
    /// either every member has one or none has. Not hashed: the node's points do not depend
    /// on it, only which of the nodes met on the walk are taken.
    #[serde(default)]
    pub zone: Option<String>,
}

fn one() -> u32 {
    1
}

impl NodeSpec {
    /// A node known by its address only (name = address, weight 1).
    pub fn new(addr: impl Into<String>) -> NodeSpec {
        NodeSpec {
            addr: addr.into(),
            name: None,
            weight: 1,
            tls_host: None,
            zone: None,
        }
    }

    /// The same node, its certificate checked against `host` (a `dns+` source's host).
    pub fn with_tls_host(mut self, host: impl Into<String>) -> NodeSpec {
        self.tls_host = Some(host.into());
        self
    }

    /// The name the node's TLS certificate must carry: its stable name, never an address it
    /// was merely found at. In order: the `dns+` host it was discovered under, the host part
    /// of its configured name (a SRV target for a node found by SRV: `TARGET:PORT`), the
    /// host part of its address. A name without a port is taken whole. (`ssl_server_name`
    /// overrides all of them, in `transport.rs`.)
    pub fn tls_name(&self) -> &str {
        if let Some(h) = &self.tls_host {
            return h;
        }
        let named = self.name.as_deref().unwrap_or(&self.addr);
        let host = split_host_port(named).map_or(named, |(h, _)| h);
        host.strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
    }

    /// The same node with a name.
    pub fn named(mut self, name: impl Into<String>) -> NodeSpec {
        self.name = Some(name.into());
        self
    }

    /// The same node in zone `zone`.
    pub fn in_zone(mut self, zone: impl Into<String>) -> NodeSpec {
        self.zone = Some(zone.into());
        self
    }

    /// The same node with a weight.
    pub fn weighted(mut self, weight: u32) -> NodeSpec {
        self.weight = weight;
        self
    }

    /// The node's identity on the ring and in every report: its configured name, else its
    /// address.
    pub fn ring_name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.addr)
    }

    /// The string ketama hashes for this node: the configured name if there is one, else
    /// `host` when the port is 11211, else `host:port` (twemproxy's `conf_add_server`, kept
    /// for libmemcached compatibility).
    pub fn ketama_name(&self) -> &str {
        if let Some(name) = &self.name {
            return name;
        }
        match split_host_port(&self.addr) {
            Some((host, KETAMA_DEFAULT_PORT)) => host,
            _ => &self.addr,
        }
    }
}

/// Splits `host:port` at the last colon. The host is kept as written (a DNS name, an IPv4
/// address or a bracketed IPv6 address) because ketama hashes it textually.
pub fn split_host_port(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let bracketed = host.len() > 2 && host.starts_with('[') && host.ends_with(']');
    let plain = !host.is_empty() && !host.contains(['[', ']', ':']);
    let clean = !host
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == ',');
    (port != 0 && clean && (plain || bracketed)).then_some((host, port))
}

/// A name must be printable as one token (CLI output separates owners with `,` and tabs, and
/// twemproxy's server lines separate the name with a space).
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == ',')
}

/// Refuses a zone name that is not one printable token (a node's, or a router's own, which is
/// compared with the nodes').
pub fn check_zone(zone: &str) -> Result<(), Error> {
    if valid_name(zone) {
        Ok(())
    } else {
        Err(Error::Config(format!(
            "zone {zone:?} must be non-empty, without spaces, control characters or commas"
        )))
    }
}

/// Refuses a membership no ring should be built from: a malformed address or name, a zero
/// weight, or two members sharing an address, a ring name or (ketama) a hashed name.
pub(crate) fn validate(nodes: &[NodeSpec], kind: HashKind) -> Result<(), Error> {
    let zoned = nodes.iter().filter(|n| n.zone.is_some()).count();
    if zoned != 0 && zoned != nodes.len() {
        // A member without a zone would silently be its own failure domain; a forgotten
        // `zone` line is far likelier than that wish.
        let bare = nodes
            .iter()
            .find(|n| n.zone.is_none())
            .map(NodeSpec::ring_name);
        return Err(Error::Config(format!(
            "node {:?} has no zone while others have one: give every node a zone or none",
            bare.unwrap_or_default()
        )));
    }
    for (i, n) in nodes.iter().enumerate() {
        if let Some(zone) = &n.zone {
            check_zone(zone).map_err(|e| Error::Config(format!("node {}: {e}", n.ring_name())))?;
        }
        if split_host_port(&n.addr).is_none() {
            return Err(Error::Config(format!(
                "node {:?}: addr must be host:port with a port in 1..=65535 (IPv6 as [addr]:port)",
                n.addr
            )));
        }
        if let Some(name) = &n.name {
            if !valid_name(name) {
                return Err(Error::Config(format!(
                    "node {}: name {name:?} must be non-empty, without spaces, control \
                     characters or commas",
                    n.addr
                )));
            }
        }
        if n.weight == 0 {
            return Err(Error::Config(format!(
                "node {}: weight must be at least 1",
                n.ring_name()
            )));
        }
        for m in &nodes[..i] {
            let clash = if m.addr == n.addr {
                Some("address")
            } else if m.ring_name() == n.ring_name() {
                Some("name")
            } else if kind == HashKind::Ketama && m.ketama_name() == n.ketama_name() {
                Some("ketama point name")
            } else {
                None
            };
            if let Some(what) = clash {
                return Err(Error::Config(format!(
                    "nodes {:?} and {:?} have the same {what}",
                    m.ring_name(),
                    n.ring_name()
                )));
            }
        }
    }
    Ok(())
}
