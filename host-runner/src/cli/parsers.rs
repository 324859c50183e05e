//! Value parsers shared by several subcommands' arguments.

use clap::builder::TypedValueParser;
use convtest_proto::arch::Arch;

/// `--arch`: proto's names, listed as clap's possible values.
pub(super) fn arch_parser() -> impl TypedValueParser<Value = Arch> {
    clap::builder::PossibleValuesParser::new(Arch::ALL.map(Arch::as_str))
        .try_map(|name: String| Arch::from_host(&name).ok_or("not an arch convtest builds for"))
}

pub(super) fn parse_u64(s: &str) -> Result<u64, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|e| format!("{s:?} is not a decimal or 0x-hex integer: {e}"))
}
