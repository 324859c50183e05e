//! `convtest list`: the catalog the guest runs from, with what each test checks.

use convtest_proto::catalog::TESTS;
use std::fmt::Write;

pub fn render() -> String {
    let width = TESTS.iter().map(|t| t.name.len()).max().unwrap_or(0);
    let mut s = String::new();
    for t in TESTS {
        let marker = if t.on_request {
            "[on request: --inject] "
        } else {
            ""
        };
        let _ = writeln!(s, "{:<width$}  {marker}{}", t.name, t.about);
    }
    let _ = writeln!(
        s,
        "\nSelect with --tests GLOB,... (e.g. --tests 'mem.*,boot.ram_map')."
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_catalog_test_is_listed_once() {
        let out = render();
        for t in TESTS {
            let lines = out
                .lines()
                .filter(|l| l.split_whitespace().next() == Some(t.name))
                .count();
            assert_eq!(lines, 1, "{}", t.name);
        }
        let inject = out
            .lines()
            .find(|l| l.starts_with("inject.requested"))
            .expect("listed");
        assert!(inject.contains("[on request"));
        let plan = out
            .lines()
            .find(|l| l.starts_with("boot.plan"))
            .expect("listed");
        assert!(!plan.contains("[on request") && plan.contains("parses"));
    }
}
