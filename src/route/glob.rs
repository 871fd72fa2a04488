//! A tiny glob matcher for layer names: `*` matches any run of characters, `?` one byte
//! (one ASCII character).

/// A compiled glob pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Glob {
    text: String,
}

impl Glob {
    /// Compiles a pattern. Every string is a valid pattern.
    pub fn new(pattern: &str) -> Glob {
        Glob {
            text: pattern.to_string(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `name` matches the whole pattern.
    pub fn matches(&self, name: &str) -> bool {
        // Classic wildcard matching with backtracking to the last star; no allocation.
        let p = self.text.as_bytes();
        let n = name.as_bytes();
        let (mut pi, mut ni) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while ni < n.len() {
            if pi < p.len() && p[pi] == b'*' {
                star = Some((pi + 1, ni));
                pi += 1;
            } else if pi < p.len() && (p[pi] == b'?' || p[pi] == n[ni]) {
                pi += 1;
                ni += 1;
            } else if let Some((sp, sn)) = star {
                pi = sp;
                ni = sn + 1;
                star = Some((sp, sn + 1));
            } else {
                return false;
            }
        }
        p[pi..].iter().all(|&c| c == b'*')
    }
}

#[cfg(test)]
mod tests {
    use super::Glob;

    #[test]
    fn stars_and_question_marks() {
        let cases = [
            ("fc*", "fc1", true),
            ("fc*", "fc", true),
            ("fc*", "conv1", false),
            ("*", "", true),
            ("*.weight", "layer1.weight", true),
            ("*.weight", "layer1.bias", false),
            ("fc?", "fc12", false),
            ("fc?", "fc2", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("conv1", "conv1", true),
            ("conv1", "conv10", false),
            ("*1", "fc1", true),
            ("*1", "fc12", false),
        ];
        for (pat, name, want) in cases {
            assert_eq!(Glob::new(pat).matches(name), want, "{pat} vs {name}");
        }
    }
}
