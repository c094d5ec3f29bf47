//! The password policy for local users: a minimum length in characters (default 8, NIST SP
//! 800-63B's floor for chosen passwords), checked the same way by `POST /users`,
//! `POST /users/import` and `PATCH /users/{name}`. There is no composition rule (NIST advises
//! against them) and no maximum below the request size limit.

/// The policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Fewest characters (Unicode scalar values) a password may have; at least 1.
    pub min_length: usize,
}

/// The default minimum length.
pub const DEFAULT_MIN_PASSWORD_LENGTH: usize = 8;

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self {
            min_length: DEFAULT_MIN_PASSWORD_LENGTH,
        }
    }
}

impl PasswordPolicy {
    /// `Err` with a sentence for a person when `password` breaks the policy.
    pub fn check(&self, password: &str) -> Result<(), String> {
        let n = password.chars().count();
        if n < self.min_length.max(1) {
            return Err(format!(
                "the password is too short: {n} characters, at least {} are required",
                self.min_length.max(1)
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_passwords_are_refused_with_the_rule() {
        let p = PasswordPolicy::default();
        let e = p.check("x").unwrap_err();
        assert!(e.contains("at least 8"), "{e}");
        assert!(p.check("12345678").is_ok());
        assert!(
            p.check("ééééééé").is_err(),
            "counted in characters, not bytes"
        );
        assert!(PasswordPolicy { min_length: 0 }.check("").is_err());
    }
}
