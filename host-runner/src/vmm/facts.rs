//! `# convtest-vmm: key=value …` lines: what the VMM chose and what the host
//! offered, for the runner's JSON `vmm` object and for a human reading the
//! console. Values never contain spaces (they would split the pair).

use std::fmt::Display;
use std::io::Write;

/// The runner's KTAP reader owns the line format.
pub use crate::ktap::VMM_PREFIX as PREFIX;

#[derive(Default)]
pub struct Facts {
    pairs: Vec<(&'static str, String)>,
}

impl Facts {
    pub fn add(&mut self, key: &'static str, value: impl Display) -> &mut Self {
        let v = value.to_string().replace(char::is_whitespace, "_");
        self.pairs
            .push((key, if v.is_empty() { "-".into() } else { v }));
        self
    }

    pub fn line(&self) -> String {
        let mut s = PREFIX.trim_end().to_string();
        for (k, v) in &self.pairs {
            s.push(' ');
            s.push_str(k);
            s.push('=');
            s.push_str(v);
        }
        s.push('\n');
        s
    }

    /// Writes the line to the console stream; the runner being gone is not
    /// the VMM's problem.
    pub fn emit(&self, out: &mut dyn Write) {
        let _ = out
            .write_all(self.line().as_bytes())
            .and_then(|()| out.flush());
    }
}

/// The host kernel release (uname -r), "unknown" when unreadable.
pub fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// `cap:value` pairs, hex, comma-separated: `201:0x1000,235:0x3`.
pub fn caps(values: &[(u32, i32)]) -> String {
    values
        .iter()
        .map(|(c, v)| format!("{c}:{v:#x}"))
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_of_pairs_without_spaces() {
        let mut f = Facts::default();
        f.add("memory", "sw-protected")
            .add("kernel", "7.3 x")
            .add("caps", caps(&[(201, 0x1000), (235, 3)]))
            .add("empty", "");
        assert_eq!(
            f.line(),
            "# convtest-vmm: memory=sw-protected kernel=7.3_x caps=201:0x1000,235:0x3 empty=-\n"
        );
    }
}
