//! A base chain's `type T hook H priority P`.

use super::*;

impl<'b> Parser<'b> {
    /// `type T hook H priority P`
    pub(super) fn hook_spec(&mut self) -> Result<HookSpec> {
        let span = self.expect_word("type")?;
        let chain_type = self.word("a chain type")?;
        self.expect_word("hook")?;
        let hook = self.word("a hook name")?;
        if self.is_word("device") {
            return Err(Error::new(
                self.span(),
                "'device' is not supported by this loader",
            ));
        }
        self.expect_word("priority")?;
        let priority = self.priority()?;
        Ok(HookSpec {
            span,
            chain_type,
            hook,
            priority,
        })
    }

    /// `N`, `-N`, `KEYWORD`, `KEYWORD + N`, `KEYWORD - N`.
    fn priority(&mut self) -> Result<Priority> {
        let span = self.span();
        let signed = |p: &mut Parser, negative: bool| -> Result<i64> {
            let (n, n_span) = p.number("a number")?;
            let n = i64::try_from(n)
                .ok()
                .filter(|n| *n <= i64::from(i32::MAX) + 1)
                .ok_or_else(|| Error::new(n_span, "priority out of range"))?;
            Ok(if negative { -n } else { n })
        };
        let base = match self.peek().clone() {
            Tok::Dash => {
                self.advance();
                PriorityBase::Number(signed(self, true)?)
            }
            Tok::Number(_) => PriorityBase::Number(signed(self, false)?),
            Tok::Word(_) => PriorityBase::Keyword(self.word("a priority")?),
            _ => return Err(self.unexpected("a priority number or keyword")),
        };
        let offset = match (&base, self.peek()) {
            (PriorityBase::Keyword(_), Tok::Plus) => {
                self.advance();
                signed(self, false)?
            }
            (PriorityBase::Keyword(_), Tok::Dash) => {
                self.advance();
                signed(self, true)?
            }
            _ => 0,
        };
        Ok(Priority { span, base, offset })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{in_chain, parse, parse_error};

    fn hook_of(head: &str) -> HookSpec {
        let source = parse(&in_chain("ip", head, "accept"));
        let Some(TopItem::AddTable { body, .. }) = source.items.first() else {
            panic!("{source:?}");
        };
        let Some(TableItem::Chain(chain)) = body.first() else {
            panic!("{body:?}");
        };
        chain
            .items
            .iter()
            .find_map(|item| match item {
                ChainItem::Hook(hook) => Some(hook.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{chain:?}"))
    }

    #[test]
    fn a_priority_is_a_keyword_and_a_signed_offset() {
        let hook = hook_of("type nat hook prerouting priority dstnat - 5");
        assert_eq!(
            (hook.chain_type.text.as_str(), hook.hook.text.as_str()),
            ("nat", "prerouting")
        );
        assert!(
            matches!(&hook.priority.base, PriorityBase::Keyword(word) if word.text == "dstnat"),
            "{hook:?}"
        );
        assert_eq!(hook.priority.offset, -5);
    }

    #[test]
    fn a_negative_number_is_a_priority() {
        let hook = hook_of("type filter hook input priority -150");
        assert_eq!(hook.priority.base, PriorityBase::Number(-150));
    }

    #[test]
    fn a_missing_priority_is_an_error_at_the_end_of_the_line() {
        assert_eq!(
            parse_error(&in_chain("ip", "type filter hook input priority", "accept")),
            "t.nft:3:32: syntax error, unexpected end of line, expecting a priority number or keyword"
        );
    }
}
