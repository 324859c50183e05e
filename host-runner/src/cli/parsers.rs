//! Value parsers shared by several subcommands' arguments.

use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use convtest_proto::keyword::Keyword;

/// A flag whose values are a [`Keyword`] set: clap lists the words (with
/// each one's help) and hands back the value.
pub(super) fn keyword<K: Keyword + Send + Sync>() -> impl TypedValueParser<Value = K> {
    let values = K::ALL.iter().map(|k| {
        let value = PossibleValue::new(k.as_str());
        match k.help() {
            "" => value,
            help => value.help(help),
        }
    });
    PossibleValuesParser::new(values)
        .try_map(|word: String| K::from_word(&word).ok_or("not one of the possible values"))
}

pub(super) fn parse_u64(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not a decimal or 0x-hex integer: {e}"))
}
