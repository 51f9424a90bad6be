//! Clock (being built).
