//! What the mock answers: scripted errors per token or for the next requests, connection drops
//! and GOAWAYs, and a response delay.

use std::collections::{HashMap, VecDeque};

/// An error answer: a status and an optional reason, sent as `{"reason":"…"}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The HTTP status.
    pub status: u16,
    /// The reason; `None` sends an empty body.
    pub reason: Option<String>,
}

impl Reply {
    /// A reply with `status` and `reason`.
    pub fn new(status: u16, reason: &str) -> Self {
        Self {
            status,
            reason: Some(reason.to_owned()),
        }
    }

    /// A reply with `status` and no body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            reason: None,
        }
    }
}

/// What to do with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Answer 200.
    Accept,
    /// Answer with this error.
    Fail(Reply),
    /// Close the TCP connection without answering (every stream on it fails).
    Drop,
    /// Answer 200, then send GOAWAY and close the connection once its streams finish.
    GoAway,
}

#[derive(Debug)]
struct TokenRule {
    reply: Reply,
    remaining: Option<usize>,
}

/// The scripted behaviour, consulted once per valid request.
#[derive(Debug, Default)]
pub(crate) struct Script {
    tokens: HashMap<String, TokenRule>,
    next: VecDeque<Action>,
}

impl Script {
    pub(crate) fn fail_token(&mut self, token_hex: &str, reply: Reply, times: Option<usize>) {
        self.tokens.insert(
            token_hex.to_ascii_lowercase(),
            TokenRule {
                reply,
                remaining: times,
            },
        );
    }

    pub(crate) fn push_next(&mut self, n: usize, action: Action) {
        self.next.extend(std::iter::repeat_n(action, n));
    }

    pub(crate) fn clear(&mut self) {
        self.tokens.clear();
        self.next.clear();
    }

    /// The action for a request to `token_hex`: a token rule first, else the next queued
    /// action, else accept.
    pub(crate) fn action_for(&mut self, token_hex: &str) -> Action {
        if let Some(rule) = self.tokens.get_mut(token_hex) {
            let reply = rule.reply.clone();
            match &mut rule.remaining {
                None => return Action::Fail(reply),
                Some(0) => {}
                Some(n) => {
                    *n -= 1;
                    return Action::Fail(reply);
                }
            }
        }
        self.next.pop_front().unwrap_or(Action::Accept)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_rules_win_and_counted_rules_run_out() {
        let mut s = Script::default();
        s.fail_token("AB", Reply::new(410, "Unregistered"), None);
        s.fail_token("cd", Reply::status(500), Some(1));
        s.push_next(1, Action::Drop);
        assert_eq!(
            s.action_for("ab"),
            Action::Fail(Reply::new(410, "Unregistered"))
        );
        assert_eq!(
            s.action_for("ab"),
            Action::Fail(Reply::new(410, "Unregistered"))
        );
        assert_eq!(s.action_for("cd"), Action::Fail(Reply::status(500)));
        assert_eq!(s.action_for("cd"), Action::Drop);
        assert_eq!(s.action_for("cd"), Action::Accept);
        s.clear();
        assert_eq!(s.action_for("ab"), Action::Accept);
    }
}
