//! Shell-style `*` / `?` matching for `tests=` selections.

/// True when `name` matches `pattern`, where `*` matches any run of
/// characters (dots included) and `?` exactly one.
pub fn matches(pattern: &str, name: &str) -> bool {
    let (p, n) = (pattern.as_bytes(), name.as_bytes());
    let (mut pi, mut ni) = (0usize, 0usize);
    // Position of the last `*` seen and the name index it was tried at.
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            backtrack = Some((pi, ni));
            pi += 1;
        } else if let Some((star, at)) = backtrack {
            pi = star + 1;
            ni = at + 1;
            backtrack = Some((star, at + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

/// True when any comma-separated pattern in `list` matches `name`.
pub fn matches_any(list: &str, name: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("mem.walking_ones", "mem.walking_ones"));
        assert!(!matches("mem.walking_one", "mem.walking_ones"));
        assert!(matches("mem.*", "mem.walking_ones"));
        assert!(matches("*", "anything.at.all"));
        assert!(!matches("*.roundtrip", "exc.trap_roundtrip"));
        assert!(matches("*roundtrip", "exc.trap_roundtrip"));
        assert!(matches("m?m.*", "mem.x"));
        assert!(!matches("m?m.*", "mm.x"));
        assert!(matches("a*b*c", "aXXbYYc"));
        assert!(!matches("a*b*c", "aXXbYY"));
        assert!(matches("", "") && !matches("", "x"));
    }

    #[test]
    fn lists() {
        assert!(matches_any("boot.*, heap.*", "heap.stress"));
        assert!(!matches_any("boot.*,heap.*", "mem.walking_ones"));
        assert!(!matches_any("", "boot.ram_map"));
        assert!(matches_any(",,boot.ram_map,", "boot.ram_map"));
    }
}
