//! Usernames are one name whatever their case: `Alice` and `alice` are the same person. The
//! stored name keeps the case it was created with; creating a name that differs from an
//! existing one only in case is refused ([`clash`]), and what a person types at the portal is
//! trimmed and matched without case ([`resolve`]).
//!
//! Case is folded with Unicode lowercase mapping ([`char::to_lowercase`]), the same form the
//! lockout counters use ([`crate::lockout::normalise_username`]).

/// The folded form of `name`: trimmed, lowercased.
pub fn fold(name: &str) -> String {
    name.trim().chars().flat_map(char::to_lowercase).collect()
}

/// True when `a` and `b` are the same name without case (neither is trimmed).
pub fn same(a: &str, b: &str) -> bool {
    a.chars()
        .flat_map(char::to_lowercase)
        .eq(b.chars().flat_map(char::to_lowercase))
}

/// The stored name among `existing` that `new` differs from only in case (or equals), if any.
pub fn clash<'a>(new: &str, existing: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    existing.into_iter().find(|e| same(e, new))
}

/// The stored name a person means by `typed`: the exact (trimmed) name when it exists, else
/// the one name equal to it without case. `None` when there is none, or when several stored
/// names differ only in case (possible only for users created before names were unique
/// without case): an ambiguous name signs nobody in. Always looks at every name, so the time
/// taken does not tell whether or how a name matched.
pub fn resolve<'a>(typed: &str, existing: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let typed = typed.trim();
    let (mut exact, mut folded, mut folded_count) = (None, None, 0_usize);
    for name in existing {
        if name == typed {
            exact = Some(name);
        } else if same(name, typed) {
            folded = Some(name);
            folded_count += 1;
        }
    }
    if typed.is_empty() {
        return None;
    }
    exact.or(folded.filter(|_| folded_count == 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_match_without_case_and_surrounding_space() {
        let users = ["alice", "Bob", "ÉMILE", "nobody"];
        let it = || users.iter().copied();
        assert_eq!(resolve("alice", it()), Some("alice"));
        assert_eq!(resolve(" Alice ", it()), Some("alice"));
        assert_eq!(resolve("BOB", it()), Some("Bob"));
        assert_eq!(resolve("émile", it()), Some("ÉMILE"));
        assert_eq!(resolve("carol", it()), None);
        assert_eq!(resolve("  ", it()), None);
        assert_eq!(resolve("al ice", it()), None);
        assert_eq!(fold(" ÉMile "), "émile");
    }

    #[test]
    fn legacy_names_differing_only_in_case_resolve_exactly_or_not_at_all() {
        let users = ["Alice", "alice"];
        let it = || users.iter().copied();
        assert_eq!(resolve("Alice", it()), Some("Alice"));
        assert_eq!(resolve("alice", it()), Some("alice"));
        assert_eq!(resolve("ALICE", it()), None);
    }

    #[test]
    fn a_new_name_clashes_with_one_differing_only_in_case() {
        let users = ["alice", "bob"];
        assert_eq!(clash("Alice", users.iter().copied()), Some("alice"));
        assert_eq!(clash("alice", users.iter().copied()), Some("alice"));
        assert_eq!(clash("carol", users.iter().copied()), None);
    }
}
