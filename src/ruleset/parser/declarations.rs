//! The top level and blocks: commands (`table`, `add chain`, `flush
//! ruleset`...), `define`s, and the items of table and chain blocks.

use super::*;

impl<'b> Parser<'b> {
    /// `define|redefine NAME = VALUE` or `undefine NAME`, if one is here.
    pub(super) fn binding(&mut self) -> Result<Option<Binding>> {
        let kind = match self.peek() {
            Tok::Word(w) if w == "define" || w == "redefine" || w == "undefine" => w.clone(),
            _ => return Ok(None),
        };
        self.advance();
        let name = self.name("a variable name")?;
        let binding = if kind == "undefine" {
            Binding::Undefine { name }
        } else {
            self.expect(&Tok::Assign, "'='")?;
            let value = self.rhs()?;
            if kind == "define" {
                Binding::Define { name, value }
            } else {
                Binding::Redefine { name, value }
            }
        };
        self.separator()?;
        Ok(Some(binding))
    }

    pub(super) fn top_items(&mut self) -> Result<Vec<TopItem>> {
        self.block(End::File, TopItem::Binding, |p| {
            let command = p.command()?;
            if *p.peek() != Tok::Eof {
                p.separator()?;
            }
            Ok(command)
        })
    }

    /// One command: `[add] table|chain|set|map|rule|element ...`,
    /// `insert rule`, `delete table`, `flush table|ruleset`.
    fn command(&mut self) -> Result<TopItem> {
        let span = self.span();
        let verb = match self.peek() {
            Tok::Word(w) if matches!(w.as_str(), "add" | "insert" | "delete" | "flush") => {
                let verb = w.clone();
                self.advance();
                verb
            }
            _ => "add".to_string(),
        };
        let object = self.word("a command such as 'table' or 'add rule'")?;
        match (verb.as_str(), object.text.as_str()) {
            ("flush", "ruleset") => Ok(TopItem::FlushRuleset(span)),
            ("flush", "table") => Ok(TopItem::FlushTable {
                span,
                table: self.table_name()?,
            }),
            ("delete", "table") => Ok(TopItem::DeleteTable {
                span,
                table: self.table_name()?,
            }),
            ("add", "table") => {
                let table = self.table_name()?;
                let body = if self.eat(&Tok::LBrace) {
                    self.table_body(End::Brace)?
                } else {
                    Vec::new()
                };
                Ok(TopItem::AddTable { span, table, body })
            }
            ("add", "chain") => {
                let table = self.table_name()?;
                let name = self.name("a chain name")?;
                let items = if self.eat(&Tok::LBrace) {
                    self.chain_body(End::Brace)?
                } else {
                    Vec::new()
                };
                let chain = ChainBlock {
                    span: span.clone(),
                    name,
                    items,
                };
                Ok(TopItem::AddChain { span, table, chain })
            }
            ("add", "set" | "map") => {
                let table = self.table_name()?;
                let set = self.set_block(span.clone(), object.text == "map")?;
                Ok(TopItem::AddSet { span, table, set })
            }
            ("add" | "insert", "rule") => {
                let table = self.table_name()?;
                let chain = self.name("a chain name")?;
                let placement = if verb == "insert" {
                    Placement::Prepend
                } else {
                    Placement::Append
                };
                let rule = self.rule()?;
                Ok(TopItem::AddRule {
                    span,
                    table,
                    chain,
                    placement,
                    rule,
                })
            }
            ("add", "element") => {
                let table = self.table_name()?;
                let set = self.name("a set name")?;
                let elements = self.set_literal_or_var()?;
                Ok(TopItem::AddElements {
                    span,
                    table,
                    set,
                    elements,
                })
            }
            _ => Err(Error::new(
                object.span,
                format!("'{verb} {}' is not supported by this loader", object.text),
            )),
        }
    }

    /// `[ip|ip6|inet|bridge] NAME`; without a family, nft means ip.
    fn table_name(&mut self) -> Result<TableName> {
        let family = match self.peek() {
            Tok::Word(w) => match w.as_str() {
                "ip" => Some(Family::Ip),
                "ip6" => Some(Family::Ip6),
                "inet" => Some(Family::Inet),
                "bridge" => Some(Family::Bridge),
                "arp" | "netdev" => {
                    return Err(Error::new(
                        self.span(),
                        format!("family '{w}' is not supported by this loader"),
                    ));
                }
                _ => None,
            },
            _ => None,
        };
        if family.is_some() {
            self.advance();
        }
        Ok(TableName {
            family: family.unwrap_or(Family::Ip),
            name: self.name("a table name")?,
        })
    }

    fn table_body(&mut self, end: End) -> Result<Vec<TableItem>> {
        self.block(end, TableItem::Binding, Self::table_item)
    }

    fn table_item(&mut self) -> Result<TableItem> {
        let span = self.span();
        let keyword = self.word("'chain', 'set', 'map' or '}'")?;
        let item = match keyword.text.as_str() {
            "chain" => {
                let name = self.name("a chain name")?;
                self.expect(&Tok::LBrace, "'{'")?;
                let items = self.chain_body(End::Brace)?;
                TableItem::Chain(ChainBlock { span, name, items })
            }
            "set" | "map" => TableItem::Set(self.set_block(span, keyword.text == "map")?),
            "comment" => TableItem::Comment(self.string("a quoted comment")?),
            other => {
                return Err(Error::new(
                    keyword.span,
                    format!("'{other}' is not supported in a table block"),
                ));
            }
        };
        self.separator()?;
        Ok(item)
    }

    fn chain_body(&mut self, end: End) -> Result<Vec<ChainItem>> {
        self.block(end, ChainItem::Binding, Self::chain_item)
    }

    fn chain_item(&mut self) -> Result<ChainItem> {
        let item = if self.is_word("type") {
            ChainItem::Hook(self.hook_spec()?)
        } else if self.eat_word("policy") {
            ChainItem::Policy(self.word("'accept' or 'drop'")?)
        } else if self.eat_word("comment") {
            ChainItem::Comment(self.string("a quoted comment")?)
        } else {
            ChainItem::Rule(self.rule()?)
        };
        self.separator()?;
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::test_support::{parse, parse_error};

    #[test]
    fn a_flat_rule_command_names_its_table_and_chain() {
        let source = parse("add rule ip t c accept\n");
        let [TopItem::AddRule { table, chain, .. }] = source.items.as_slice() else {
            panic!("{source:?}");
        };
        assert_eq!((table.family, table.name.text.as_str()), (Family::Ip, "t"));
        assert_eq!(chain.text, "c");
    }

    #[test]
    fn a_table_block_holds_its_chains_and_sets_in_order() {
        let source = parse("table inet t {\nset s {\ntype ipv4_addr\n}\nchain c {\n}\n}\n");
        let [TopItem::AddTable { body, .. }] = source.items.as_slice() else {
            panic!("{source:?}");
        };
        assert!(
            matches!(body.as_slice(), [TableItem::Set(_), TableItem::Chain(_)]),
            "{body:?}"
        );
    }

    #[test]
    fn an_unknown_command_is_an_error_at_its_first_word() {
        assert_eq!(
            parse_error("tabel ip t {}\n"),
            "t.nft:1:1: 'add tabel' is not supported by this loader"
        );
    }
}
