//! Declarations: `define`s, tables, chains and their comments, in the order
//! nft expands a table block (the table, its chains, its sets and maps, then
//! every chain's rules).

use super::*;

/// nft's limit on comments (NFTNL_UDATA_COMMENT_MAXLEN).
const MAX_COMMENT: usize = 128;

impl Checker {
    pub(super) fn binding(&mut self, binding: &Binding) -> Result<()> {
        match binding {
            Binding::Define { name, value } => self.scopes.define(name, value),
            Binding::Redefine { name, value } => self.scopes.redefine(name, value),
            Binding::Undefine { name } => self.scopes.undefine(name),
        }
    }

    fn table(&self, name: &TableName) -> Result<&TableInfo> {
        self.tables.get(&table_id(name)).ok_or_else(|| {
            Error::new(
                name.name.span.clone(),
                format!(
                    "no such table: {} (declare it in the loaded files first)",
                    describe_table(&table_id(name))
                ),
            )
        })
    }

    pub(super) fn table_mut(&mut self, id: &TableId) -> &mut TableInfo {
        self.tables.entry(id.clone()).or_default()
    }

    pub(super) fn top_item(&mut self, item: &TopItem) -> Result<()> {
        match item {
            TopItem::Binding(binding) => self.binding(binding),
            TopItem::FlushRuleset(span) => {
                self.tables.clear();
                self.emit(span, CommandKind::FlushRuleset);
                Ok(())
            }
            TopItem::AddTable { span, table, body } => self.table_block(span, table, body),
            TopItem::DeleteTable { span, table } => {
                let id = table_id(table);
                self.tables.remove(&id);
                self.emit(span, CommandKind::DeleteTable(id));
                Ok(())
            }
            TopItem::FlushTable { span, table } => {
                self.emit(span, CommandKind::FlushTable(table_id(table)));
                Ok(())
            }
            TopItem::AddChain { table, chain, .. } => {
                self.table(table)?;
                let id = table_id(table);
                let command = self.declare_chain(&id, chain)?;
                self.commands.push(command);
                self.chain_rules(&id, chain)
            }
            TopItem::AddSet { table, set, .. } => {
                self.table(table)?;
                self.set_block(&table_id(table), set)
            }
            TopItem::AddRule {
                table,
                chain,
                placement,
                rule,
                ..
            } => {
                self.table(table)?;
                let id = table_id(table);
                let command = self.rule(&id, chain, *placement, rule);
                self.keep_going(command)
            }
            TopItem::AddElements {
                span,
                table,
                set,
                elements,
            } => {
                self.table(table)?;
                let id = table_id(table);
                let elements = self.elements_of(&id, set, elements)?;
                self.emit(
                    span,
                    CommandKind::AddElements(Elements {
                        table: id,
                        set: SetRef {
                            name: set.text.clone(),
                            span: set.span.clone(),
                        },
                        elements,
                    }),
                );
                Ok(())
            }
        }
    }

    /// `table F N { ... }`: the table, then its chains, sets, and rules, as
    /// nft expands a block. Sets and rules are typed with the variables in
    /// force where they stand.
    fn table_block(&mut self, span: &Span, table: &TableName, body: &[TableItem]) -> Result<()> {
        let id = table_id(table);
        let mut comment = None;
        for item in body {
            if let TableItem::Comment(text) = item {
                comment = Some(check_comment(text)?);
            }
        }
        self.table_mut(&id);
        self.emit(
            span,
            CommandKind::AddTable(Table {
                id: id.clone(),
                comment,
            }),
        );
        for item in body {
            if let TableItem::Chain(chain) = item {
                let command = self.declare_chain(&id, chain)?;
                self.commands.push(command);
            }
        }
        self.scopes.push();
        let mut sets = Vec::new();
        let mut chains = Vec::new();
        for item in body {
            match item {
                TableItem::Binding(binding) => self.binding(binding)?,
                TableItem::Set(set) => sets.push((set, self.scopes.clone())),
                TableItem::Chain(chain) => chains.push((chain, self.scopes.clone())),
                TableItem::Comment(_) => {}
            }
        }
        self.scopes.pop();
        let outer = self.scopes.clone();
        for (set, scopes) in sets {
            self.scopes = scopes;
            self.set_block(&id, set)?;
        }
        for (chain, scopes) in chains {
            self.scopes = scopes;
            self.chain_rules(&id, chain)?;
        }
        self.scopes = outer;
        Ok(())
    }

    /// Registers a chain (or checks a redeclaration matches) and returns its
    /// `AddChain`.
    fn declare_chain(&mut self, id: &TableId, chain: &ChainBlock) -> Result<Command> {
        let mut hook = None;
        let mut policy = None;
        let mut comment = None;
        for item in &chain.items {
            match item {
                ChainItem::Hook(spec) => {
                    if hook.is_some() {
                        return Err(Error::new(
                            spec.span.clone(),
                            "a chain has one 'type ... hook ... priority'",
                        ));
                    }
                    hook = Some(self.hook_spec(id.family, spec)?);
                }
                ChainItem::Policy(word) => {
                    policy = Some(match word.text.as_str() {
                        "accept" => (Policy::Accept, word.span.clone()),
                        "drop" => (Policy::Drop, word.span.clone()),
                        other => {
                            return Err(Error::new(
                                word.span.clone(),
                                format!("policy must be 'accept' or 'drop', not '{other}'"),
                            ));
                        }
                    })
                }
                ChainItem::Comment(text) => comment = Some(check_comment(text)?),
                ChainItem::Binding(_) | ChainItem::Rule(_) => {}
            }
        }
        let table = self.table_mut(id);
        let existing = table.chains.get(&chain.name.text).map(|c| c.base.clone());
        let base = match (hook, existing) {
            (Some(mut base), Some(Some(old))) => {
                if (base.chain_type, base.hook, base.priority)
                    != (old.chain_type, old.hook, old.priority)
                {
                    return Err(Error::new(
                        base.span.clone(),
                        format!(
                            "chain '{}' already exists with another type, hook or priority",
                            chain.name.text
                        ),
                    ));
                }
                base.policy = policy.as_ref().map(|p| p.0);
                Some(base)
            }
            (Some(base), Some(None)) => {
                return Err(Error::new(
                    base.span.clone(),
                    format!(
                        "chain '{}' already exists as a regular chain",
                        chain.name.text
                    ),
                ));
            }
            (Some(mut base), None) => {
                base.policy = policy.as_ref().map(|p| p.0);
                Some(base)
            }
            (None, existing) => {
                let is_base = matches!(existing, Some(Some(_)));
                if let (Some((_, span)), false) = (&policy, is_base) {
                    return Err(Error::new(
                        span.clone(),
                        "a policy needs a base chain ('type ... hook ... priority')",
                    ));
                }
                None
            }
        };
        if !table.chains.contains_key(&chain.name.text) {
            table.chain_order.push(chain.name.text.clone());
            table.chains.insert(
                chain.name.text.clone(),
                ChainInfo {
                    base: base.clone(),
                    needs: Vec::new(),
                    edges: Vec::new(),
                },
            );
        }
        Ok(Command {
            span: chain.span.clone(),
            kind: CommandKind::AddChain(Chain {
                table: id.clone(),
                name: chain.name.text.clone(),
                base,
                comment,
            }),
        })
    }

    /// The rules of a chain block, in order, with the block's variables.
    fn chain_rules(&mut self, id: &TableId, chain: &ChainBlock) -> Result<()> {
        self.scopes.push();
        for item in &chain.items {
            match item {
                ChainItem::Binding(binding) => self.binding(binding)?,
                ChainItem::Rule(rule) => {
                    let command = self.rule(id, &chain.name, Placement::Append, rule);
                    self.keep_going(command)?;
                }
                ChainItem::Hook(_) | ChainItem::Policy(_) | ChainItem::Comment(_) => {}
            }
        }
        self.scopes.pop();
        Ok(())
    }

    /// `; did you mean 'NAME'?` for a chain of the table near `name`.
    pub(super) fn chain_hint(&self, id: &TableId, name: &str) -> String {
        self.tables.get(id).map_or(String::new(), |t| {
            suggest::did_you_mean(name, t.chain_order.iter().map(String::as_str), "")
        })
    }
}

fn table_id(name: &TableName) -> TableId {
    TableId {
        family: name.family,
        name: name.name.text.clone(),
    }
}

pub(super) fn describe_table(id: &TableId) -> String {
    format!("{} {}", id.family.name(), id.name)
}

pub(super) fn check_comment(comment: &Name) -> Result<String> {
    // Bytes, as nft counts them (strlen), whatever the message says.
    if comment.text.len() > MAX_COMMENT {
        return Err(Error::new(
            comment.span.clone(),
            format!("comment too long, {MAX_COMMENT} characters maximum allowed"),
        ));
    }
    Ok(comment.text.clone())
}

#[cfg(test)]
mod tests {
    use crate::ruleset::ast::CommandKind;
    use crate::ruleset::test_support::{check_error, check_ok};

    #[test]
    fn a_rule_in_an_undeclared_table_is_an_error_at_the_table_name() {
        assert_eq!(
            check_error("add rule ip nope c accept\n"),
            "t.nft:1:13: no such table: ip nope (declare it in the loaded files first)"
        );
    }

    #[test]
    fn a_table_comment_longer_than_128_bytes_is_an_error_at_the_comment() {
        let text = format!("table ip t {{\ncomment \"{}\"\n}}\n", "a".repeat(129));
        assert_eq!(
            check_error(&text),
            "t.nft:2:9: comment too long, 128 characters maximum allowed"
        );
    }

    #[test]
    fn undefining_an_unknown_variable_is_an_error_at_its_name() {
        assert_eq!(
            check_error("undefine nope\n"),
            "t.nft:1:10: undefined symbol 'nope'"
        );
    }

    #[test]
    fn a_table_block_expands_to_the_table_then_chains_then_sets_then_rules() {
        let ruleset = check_ok(
            "table ip t {\nchain c {\nip saddr @s accept\n}\nset s {\ntype ipv4_addr\n}\n}\n",
        );
        let kinds: Vec<&str> = ruleset
            .commands
            .iter()
            .map(|c| match c.kind {
                CommandKind::AddTable(_) => "table",
                CommandKind::AddChain(_) => "chain",
                CommandKind::AddSet(_) => "set",
                CommandKind::AddRule(_) => "rule",
                _ => "other",
            })
            .collect();
        assert_eq!(kinds, ["table", "chain", "set", "rule"]);
    }
}
