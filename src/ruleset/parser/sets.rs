//! `set` and `map` blocks: type, flags, elements.

use super::*;

impl<'b> Parser<'b> {
    /// `NAME { ... }` after `set`/`map` (`span` is that keyword).
    pub(super) fn set_block(&mut self, span: Span, is_map: bool) -> Result<SetBlock> {
        let name = self.name(if is_map { "a map name" } else { "a set name" })?;
        self.expect(&Tok::LBrace, "'{'")?;
        let items = self.set_body(End::Brace)?;
        Ok(SetBlock {
            span,
            is_map,
            name,
            items,
        })
    }

    fn set_body(&mut self, end: End) -> Result<Vec<SetItem>> {
        self.block(end, SetItem::Binding, Self::set_item)
    }

    fn set_item(&mut self) -> Result<SetItem> {
        let keyword = self.word("a set property or '}'")?;
        let item = match keyword.text.as_str() {
            "type" => {
                let key = self.type_list()?;
                let data = if self.eat(&Tok::Colon) {
                    Some(self.type_list()?)
                } else {
                    None
                };
                SetItem::Type {
                    span: keyword.span,
                    key,
                    data,
                }
            }
            "flags" => {
                let mut flags = vec![self.word("a set flag")?];
                while self.eat(&Tok::Comma) {
                    flags.push(self.word("a set flag")?);
                }
                SetItem::Flags(flags)
            }
            "timeout" => {
                // nft takes no bare number here: `timeout 30` is a syntax error.
                let text = match self.peek().clone() {
                    Tok::NumWord(text) => text,
                    _ => return Err(self.unexpected("a duration like 30s")),
                };
                SetItem::Timeout(Name {
                    text,
                    span: self.advance().span,
                })
            }
            "size" => {
                let (value, span) = self.number("a number")?;
                SetItem::Size { span, value }
            }
            "comment" => SetItem::Comment(self.string("a quoted comment")?),
            "elements" => {
                self.expect(&Tok::Assign, "'='")?;
                let elements = self.set_literal_or_var()?;
                // nft lets the closing brace follow the elements directly.
                if *self.peek() != Tok::RBrace {
                    self.separator()?;
                }
                return Ok(SetItem::Elements(elements));
            }
            other => {
                return Err(Error::new(
                    keyword.span,
                    format!("'{other}' is not supported in a set or map block"),
                ));
            }
        };
        self.separator()?;
        Ok(item)
    }

    /// `ipv4_addr . inet_service`
    fn type_list(&mut self) -> Result<Vec<Name>> {
        let mut types = vec![self.word("a type name")?];
        while self.eat(&Tok::Dot) {
            types.push(self.word("a type name")?);
        }
        Ok(types)
    }

    /// `{ ... }` or `$var` (elements of `add element` and `elements =`).
    pub(super) fn set_literal_or_var(&mut self) -> Result<Expr> {
        match self.peek().clone() {
            Tok::LBrace => self.primary(),
            Tok::Var(_) => self.primary(),
            _ => Err(self.unexpected("'{'")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{parse, parse_error};

    fn set_items(items: &str) -> Vec<SetItem> {
        let source = parse(&format!("table ip t {{\nset s {{\n{items}\n}}\n}}\n"));
        let Some(TopItem::AddTable { body, .. }) = source.items.first() else {
            panic!("{source:?}");
        };
        let Some(TableItem::Set(set)) = body.first() else {
            panic!("{body:?}");
        };
        set.items.clone()
    }

    #[test]
    fn a_concatenated_type_is_a_list_of_type_names() {
        let items = set_items("type ipv4_addr . inet_service\nflags interval");
        let Some(SetItem::Type { key, .. }) = items.first() else {
            panic!("{items:?}");
        };
        let names: Vec<&str> = key.iter().map(|n| n.text.as_str()).collect();
        assert_eq!(names, ["ipv4_addr", "inet_service"]);
        assert!(matches!(&items[1], SetItem::Flags(flags) if flags[0].text == "interval"));
    }

    #[test]
    fn an_unknown_set_item_is_an_error_at_its_word() {
        assert_eq!(
            parse_error("table ip t {\nset s {\nsizes 10\n}\n}\n"),
            "t.nft:3:1: 'sizes' is not supported in a set or map block"
        );
    }
}
