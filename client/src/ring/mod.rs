//! The virtual-node hash ring (being built).
