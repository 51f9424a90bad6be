//! The one way each program's settings are put together: the config file's keys, then the
//! command-line flags on top — both as TOML tables — deserialized once into the program's
//! settings type (`NodeConfig`, `ProxyConfig`, `LocalConfig`), whose serde defaults are the only
//! defaults and whose `deny_unknown_fields` refuses a typo wherever it comes from.
//!
//! The keys every server has are declared once, in [`ServerSettings`] (listen, metrics, connection
//! limits) and [`SecuritySettings`] (TLS, authentication, the admin gate), which each settings
//! type takes with `#[serde(flatten)]`. serde still refuses a key that neither the type nor the
//! flattened struct took (it checks what is left after `flatten`), but it reads flattened keys
//! from a buffer rather than from the table, so their errors lose the key's name: [`deserialize`]
//! puts it back. (`serde_ignored` does not help here: it never sees the keys `flatten` leaves.)
//!
//! A flag overrides the key of the same name (docs/operations.md, "Settings"), so a new setting
//! needs a field in the settings type, a documented key in `config/`, and optionally a flag
//! whose serde name is the key: nothing merges values by hand.

use std::path::Path;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::Table;

use crate::error::Error;
use crate::server::{SecuritySettings, ServerSettings};

/// A program's `*Config` (`NodeConfig`, `ProxyConfig`, `LocalConfig`): what its TOML file and
/// flags deserialise into, then checked as a whole.
pub trait ConfigFile: DeserializeOwned {
    /// Refuses settings the program could not run with.
    fn validate(&self) -> Result<(), Error>;
}

/// Settings from TOML text, validated.
pub fn parse<T: ConfigFile>(text: &str) -> Result<T, Error> {
    let table = text
        .parse::<Table>()
        .map_err(|e| Error::Config(e.to_string()))?;
    let cfg: T = deserialize(table).map_err(Error::Config)?;
    cfg.validate()?;
    Ok(cfg)
}

/// Settings from a file, validated; errors name the file.
pub fn load<T: ConfigFile>(path: &Path) -> Result<T, Error> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
    parse(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
}

/// The settings in `file` (none: all defaults) with `flags` on top, validated.
pub fn layered<T: ConfigFile>(file: Option<&Path>, flags: &impl Serialize) -> Result<T, Error> {
    let mut table = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?;
            text.parse::<Table>()
                .map_err(|e| Error::Config(format!("{}: {e}", path.display())))?
        }
        None => Table::new(),
    };
    let top = overrides(flags)?;
    // `--node` replaces the file's node list whichever form it has: a fixed `[[nodes]]` or
    // `[discovery]` (the two are exclusive, see docs/cluster.md).
    if top.contains_key("nodes") {
        table.remove("discovery");
    }
    // And `--discovery` replaces a fixed `[[nodes]]` list.
    if top.contains_key("discovery") {
        table.remove("nodes");
    }
    merge(&mut table, top);
    let what = file.map_or_else(|| "flags".to_string(), |p| p.display().to_string());
    let cfg: T = deserialize(table).map_err(|e| Error::Config(format!("{what}: {e}")))?;
    cfg.validate()?;
    Ok(cfg)
}

/// The one place settings are deserialized (from a table, so no error points at a line that
/// is not the culprit: serde reports flattened keys after the whole table is read). A bad value
/// of a flattened key comes out of serde without the key's name; read alone, the flattened
/// structs say which one it is, as every other key's error does.
fn deserialize<T: ConfigFile>(table: Table) -> Result<T, String> {
    T::deserialize(table.clone()).map_err(|e| {
        let named = SecuritySettings::deserialize(table.clone())
            .err()
            .or_else(|| ServerSettings::deserialize(table).err());
        named.unwrap_or(e).to_string()
    })
}

/// The keys a flags struct sets (its serde form; unset flags are skipped there).
pub fn overrides(flags: &impl Serialize) -> Result<Table, Error> {
    Table::try_from(flags).map_err(|e| Error::Config(format!("flags: {e}")))
}

/// Puts `top` over `base`: tables merge key by key, any other value (arrays of tables such as
/// `[[nodes]]` included) replaces what was there.
pub fn merge(base: &mut Table, top: Table) {
    for (k, v) in top {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

/// For `skip_serializing_if`: a switch flag left off sets nothing.
pub fn is_false(b: &bool) -> bool {
    !*b
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_keys_and_tables_merge() {
        let mut base: Table = "a = 1\nb = 2\n[ring]\nreplicas = 2\nvnodes = 160\n"
            .parse()
            .unwrap();
        let top: Table = "b = 3\n[ring]\nreplicas = 3\n".parse().unwrap();
        merge(&mut base, top);
        let want: Table = "a = 1\nb = 3\n[ring]\nreplicas = 3\nvnodes = 160\n"
            .parse()
            .unwrap();
        assert_eq!(base, want);
    }
}
