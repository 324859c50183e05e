//! The saved KTAP (`--ktap PATH`): the guest's console from its first
//! `KTAP version 1` on, with terminal escapes and `\r` removed, so kunit.py
//! or a bug report can take it as is. A run that never reached KTAP saves
//! nothing but a comment saying so.

use super::RunRecord;

pub fn render(r: &RunRecord) -> String {
    if r.log.ktap_lines.is_empty() {
        let last = r.log.last_line.as_deref().unwrap_or("(nothing)");
        return format!("# convtest: the guest printed no KTAP; last console line: {last}\n");
    }
    let mut s = r.log.ktap_lines.join("\n");
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample;
    use crate::verdict::Verdict;

    #[test]
    fn saved_ktap_is_the_clean_stream() {
        let good = include_str!("../../tests/fixtures/x86_pvh_pass.ktap");
        let noisy = format!("\x1b[2JSeaBIOS\r\n{}", good.replace('\n', "\r\n"));
        let saved = render(&sample(&noisy, Verdict::Pass, ""));
        assert_eq!(saved, good.trim_start_matches('\n'));
    }

    #[test]
    fn no_ktap_says_so() {
        let saved = render(&sample("Booting from ROM..\r\n", Verdict::Fail, "x"));
        assert_eq!(
            saved,
            "# convtest: the guest printed no KTAP; last console line: Booting from ROM..\n"
        );
    }
}
