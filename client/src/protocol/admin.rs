//! The sub-commands of `stats` and `lru_crawler`, read here rather than by each server.
//!
//! The parser keeps these requests' arguments as sent ([`Request::Stats`](super::Request::Stats)
//! holds the words after `stats`, [`Request::LruCrawler`](super::Request::LruCrawler) the words
//! after `lru_crawler`): a proxy forwards them unread. A server that answers them reads them
//! with these types, which know memcached 1.6.18's replies to bad arguments.

use bytes::Bytes;

use super::fault::Fault;
use super::number::safe_strtoul;

/// What `stats [group]` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatsGroup {
    /// `stats`.
    General,
    Settings,
    Items,
    Slabs,
    Conns,
    Sizes,
    /// `stats reset`: answered `RESET`.
    Reset,
    /// `stats cachedump <class> <limit>`, the class below 64.
    Cachedump {
        class: u32,
        limit: u32,
    },
    /// `stats detail on|off|dump`.
    Detail(Detail),
    /// Refused with this line (a [`Fault`] message: `ERROR` for an unknown group).
    Refused(&'static str),
}

/// `stats detail`'s sub-command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    On,
    Off,
    Dump,
}

/// memcached's slab class ids are below this (`MAX_NUMBER_OF_SLAB_CLASSES`).
const SLAB_CLASSES: u32 = 64;

impl StatsGroup {
    /// Reads the words after `stats` (as [`Request::Stats`](super::Request::Stats) holds them).
    /// The named groups must be the whole argument; `cachedump` and `detail` read the words
    /// after them (memcached ignores any beyond those it needs).
    pub fn parse(group: Option<&[u8]>) -> StatsGroup {
        let Some(group) = group else {
            return StatsGroup::General;
        };
        let mut words = group.split(|&b| b == b' ').filter(|w| !w.is_empty());
        match group {
            b"settings" => return StatsGroup::Settings,
            b"items" => return StatsGroup::Items,
            b"slabs" => return StatsGroup::Slabs,
            b"conns" => return StatsGroup::Conns,
            b"sizes" => return StatsGroup::Sizes,
            b"reset" => return StatsGroup::Reset,
            _ => {}
        }
        // The first word, as sent: `stats  detail` (two spaces) is no group.
        match group.split(|&b| b == b' ').next() {
            Some(b"cachedump") => {
                let args: Vec<&[u8]> = words.by_ref().skip(1).take(2).collect();
                if args.len() < 2 {
                    return StatsGroup::Refused(Fault::BAD_COMMAND_LINE);
                }
                let (Some(class), Some(limit)) = (safe_strtoul(args[0]), safe_strtoul(args[1]))
                else {
                    return StatsGroup::Refused(Fault::BAD_FORMAT);
                };
                if class >= SLAB_CLASSES {
                    return StatsGroup::Refused(Fault::ILLEGAL_SLAB);
                }
                StatsGroup::Cachedump { class, limit }
            }
            Some(b"detail") => match words.nth(1) {
                Some(b"on") => StatsGroup::Detail(Detail::On),
                Some(b"off") => StatsGroup::Detail(Detail::Off),
                Some(b"dump") => StatsGroup::Detail(Detail::Dump),
                _ => StatsGroup::Refused(Fault::DETAIL_USAGE),
            },
            _ => StatsGroup::Refused(Fault::ERROR),
        }
    }
}

/// What `lru_crawler <sub-command>` (other than `metadump`) asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LruCrawlerCmd {
    /// `lru_crawler crawl <classes>`: sweep dead items now.
    Crawl,
    /// `lru_crawler tocrawl <n>` or `sleep <n>`: a tuning knob, with a valid number.
    Tune,
    Enable,
    Disable,
}

impl LruCrawlerCmd {
    /// Reads the words after `lru_crawler`; `Err` holds the [`Fault`] line to answer.
    pub fn parse(args: &[Bytes]) -> Result<LruCrawlerCmd, &'static str> {
        match (args.first().map(|a| &a[..]), args.len()) {
            (Some(b"crawl"), 2) => Ok(LruCrawlerCmd::Crawl),
            (Some(b"tocrawl" | b"sleep"), 2) => {
                if !args[1].is_empty() && args[1].iter().all(u8::is_ascii_digit) {
                    Ok(LruCrawlerCmd::Tune)
                } else {
                    Err(Fault::BAD_FORMAT)
                }
            }
            (Some(b"enable"), 1) => Ok(LruCrawlerCmd::Enable),
            (Some(b"disable"), 1) => Ok(LruCrawlerCmd::Disable),
            _ => Err(Fault::ERROR),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each row as memcached 1.6.18 answers it (see the protocol table for the wire).
    #[test]
    fn stats_groups() {
        let rows: Vec<(Option<&[u8]>, StatsGroup)> = vec![
            (None, StatsGroup::General),
            (Some(b"settings"), StatsGroup::Settings),
            (Some(b"items"), StatsGroup::Items),
            (Some(b"slabs"), StatsGroup::Slabs),
            (Some(b"conns"), StatsGroup::Conns),
            (Some(b"sizes"), StatsGroup::Sizes),
            (Some(b"reset"), StatsGroup::Reset),
            (Some(b"bogus"), StatsGroup::Refused(Fault::ERROR)),
            (
                Some(b"cachedump 1 0"),
                StatsGroup::Cachedump { class: 1, limit: 0 },
            ),
            (
                Some(b"cachedump 63 5 x"),
                StatsGroup::Cachedump {
                    class: 63,
                    limit: 5,
                },
            ),
            (
                Some(b"cachedump 64 1"),
                StatsGroup::Refused(Fault::ILLEGAL_SLAB),
            ),
            (
                Some(b"cachedump 1"),
                StatsGroup::Refused(Fault::BAD_COMMAND_LINE),
            ),
            (
                Some(b"cachedump x 1"),
                StatsGroup::Refused(Fault::BAD_FORMAT),
            ),
            (
                Some(b"cachedump 1 -1"),
                StatsGroup::Refused(Fault::BAD_FORMAT),
            ),
            (Some(b"detail on"), StatsGroup::Detail(Detail::On)),
            (Some(b"detail  off x"), StatsGroup::Detail(Detail::Off)),
            (Some(b"detail dump"), StatsGroup::Detail(Detail::Dump)),
            (Some(b"detail"), StatsGroup::Refused(Fault::DETAIL_USAGE)),
            (Some(b"detail ON"), StatsGroup::Refused(Fault::DETAIL_USAGE)),
            (Some(b"detailx on"), StatsGroup::Refused(Fault::ERROR)),
        ];
        for (group, want) in rows {
            assert_eq!(
                StatsGroup::parse(group),
                want,
                "{:?}",
                group.map(String::from_utf8_lossy)
            );
        }
    }

    #[test]
    fn lru_crawler_commands() {
        let args = |words: &[&'static str]| -> Vec<Bytes> {
            words
                .iter()
                .map(|w| Bytes::from_static(w.as_bytes()))
                .collect()
        };
        assert_eq!(
            LruCrawlerCmd::parse(&args(&["crawl", "all"])),
            Ok(LruCrawlerCmd::Crawl)
        );
        assert_eq!(
            LruCrawlerCmd::parse(&args(&["sleep", "100"])),
            Ok(LruCrawlerCmd::Tune)
        );
        assert_eq!(
            LruCrawlerCmd::parse(&args(&["tocrawl", "x"])),
            Err(Fault::BAD_FORMAT)
        );
        assert_eq!(
            LruCrawlerCmd::parse(&args(&["disable"])),
            Ok(LruCrawlerCmd::Disable)
        );
        assert_eq!(
            LruCrawlerCmd::parse(&args(&["enable", "x"])),
            Err(Fault::ERROR)
        );
        assert_eq!(LruCrawlerCmd::parse(&args(&[])), Err(Fault::ERROR));
    }
}
