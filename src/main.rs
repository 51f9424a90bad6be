//! The `ringcache` binary: subcommands `node`, `proxy`, `local` and `ring`.

fn main() {}
