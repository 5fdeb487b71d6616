//! Rules and their statements: verdicts and jumps, counters, log, reject,
//! and what the bridge family lacks. Matches and NAT have their own files.

use super::declarations::{check_comment, describe_table};
use super::matches::{not_a_map, unreachable_mark};
use super::*;

/// The kernel's limit on log prefixes, without the terminating NUL.
const MAX_LOG_PREFIX: usize = 127;

impl Checker {
    /// A verdict as map data: `accept`, `drop`, `return`, `continue`,
    /// `jump NAME`, `goto NAME`.
    pub(super) fn verdict(&self, id: &TableId, expr: &Expr) -> Result<Verdict> {
        match expr {
            Expr::Word(word) => match word.text.as_str() {
                "accept" => Ok(Verdict::Accept),
                "drop" => Ok(Verdict::Drop),
                "return" => Ok(Verdict::Return),
                "continue" => Ok(Verdict::Continue),
                other => Err(Error::new(
                    word.span.clone(),
                    format!("expected a verdict, got '{other}'"),
                )),
            },
            Expr::Jump { goto, target, .. } => {
                let target = self.jump_target(id, target)?;
                Ok(if *goto {
                    Verdict::Goto(target)
                } else {
                    Verdict::Jump(target)
                })
            }
            other => Err(Error::new(
                other.span().clone(),
                format!("expected a verdict, got {}", values::describe(other)),
            )),
        }
    }

    /// A jump or goto target: a declared regular chain of the same table.
    fn jump_target(&self, id: &TableId, target: &Name) -> Result<ChainRef> {
        let chain = self.tables.get(id).and_then(|t| t.chains.get(&target.text));
        match chain {
            None => Err(Error::new(
                target.span.clone(),
                format!(
                    "no such chain '{}' in table {}{}",
                    target.text,
                    describe_table(id),
                    self.chain_hint(id, &target.text)
                ),
            )),
            Some(ChainInfo { base: Some(_), .. }) => Err(Error::new(
                target.span.clone(),
                format!("cannot jump to base chain '{}'", target.text),
            )),
            Some(_) => Ok(ChainRef {
                name: target.text.clone(),
                span: target.span.clone(),
            }),
        }
    }

    pub(super) fn rule(
        &mut self,
        id: &TableId,
        chain: &Name,
        placement: Placement,
        line: &RuleLine,
    ) -> Result<Command> {
        let known = self
            .tables
            .get(id)
            .is_some_and(|t| t.chains.contains_key(&chain.text));
        if !known {
            return Err(Error::new(
                chain.span.clone(),
                format!(
                    "no such chain '{}' in table {}{}",
                    chain.text,
                    describe_table(id),
                    self.chain_hint(id, &chain.text)
                ),
            ));
        }
        let mut ctx = RuleCtx {
            table: id,
            chain: &chain.text,
            l3: match id.family {
                Family::Ip => Some(L3::Ip),
                Family::Ip6 => Some(L3::Ip6),
                Family::Inet | Family::Bridge => None,
            },
            l4: Vec::new(),
            l4_matched: false,
            icmpv6_type: None,
        };
        let mut stmts = Vec::with_capacity(line.stmts.len());
        let mut terminal = false;
        for stmt in &line.stmts {
            // nft refuses what can never run (`masquerade drop`).
            if terminal {
                return Err(Error::new(
                    stmt.span.clone(),
                    "Statement after terminal statement has no effect",
                ));
            }
            terminal = is_terminal(&stmt.kind);
            let kind = self.stmt(&mut ctx, stmt)?;
            stmts.push(Stmt {
                span: stmt.span.clone(),
                kind,
            });
        }
        Ok(Command {
            span: line.span.clone(),
            kind: CommandKind::AddRule(Rule {
                table: id.clone(),
                chain: chain.text.clone(),
                placement,
                stmts,
                comment: line.comment.as_ref().map(check_comment).transpose()?,
                span: line.span.clone(),
            }),
        })
    }

    fn stmt(&mut self, ctx: &mut RuleCtx, stmt: &syntax::Stmt) -> Result<StmtKind> {
        use syntax::StmtKind as S;
        if ctx.table.family == Family::Bridge {
            bridge_statement(stmt)?;
        }
        Ok(match &stmt.kind {
            S::Match {
                key,
                mask,
                op,
                op_span,
                rhs,
            } => StmtKind::Match(self.match_stmt(ctx, key, mask.as_ref(), *op, op_span, rhs)?),
            S::Counter { packets, bytes } => StmtKind::Counter {
                packets: *packets,
                bytes: *bytes,
            },
            S::Log { prefix } => StmtKind::Log {
                prefix: match prefix {
                    None => None,
                    Some(expr) => Some(self.log_prefix(expr)?),
                },
            },
            S::MarkSet { ct, value } => {
                let value = match value {
                    MarkSource::MetaMark => MarkValue::MetaMark,
                    MarkSource::CtMark => MarkValue::CtMark,
                    MarkSource::Value(expr) => {
                        let expr = self.scopes.expand(expr)?;
                        match values::scalar(&expr, DataType::Mark)? {
                            Scalar::Mark(m) => MarkValue::Const(m),
                            _ => unreachable_mark(&expr)?,
                        }
                    }
                    MarkSource::Map { key, map } => self.mark_map(ctx, key, map)?,
                };
                if *ct {
                    StmtKind::CtMarkSet(value)
                } else {
                    StmtKind::MetaMarkSet(value)
                }
            }
            S::Verdict(word) => {
                StmtKind::Verdict(self.verdict(ctx.table, &Expr::Word(word.clone()))?)
            }
            S::Jump { goto, target } => {
                let target = self.jump_target(ctx.table, target)?;
                self.edge(ctx, Edge::Chain(target.name.clone()));
                StmtKind::Verdict(if *goto {
                    Verdict::Goto(target)
                } else {
                    Verdict::Jump(target)
                })
            }
            S::Vmap { key, map } => StmtKind::VerdictMap(self.vmap(ctx, key, map)?),
            S::Reject { with, code } => StmtKind::Reject(reject(ctx.table.family, with, code)?),
            S::Masquerade { port, flags } => {
                self.masquerade_or_redirect(ctx, &stmt.span, false, port.as_ref(), flags)?
            }
            S::Redirect { port, flags } => {
                self.masquerade_or_redirect(ctx, &stmt.span, true, port.as_ref(), flags)?
            }
            S::Nat {
                dnat,
                family,
                target,
                flags,
            } => StmtKind::Nat(self.nat(ctx, &stmt.span, *dnat, family.as_ref(), target, flags)?),
        })
    }

    /// `KEY map @m` after `mark set`: a named map of the key's type to
    /// `mark` (an anonymous one is nft's, not this loader's).
    fn mark_map(&mut self, ctx: &mut RuleCtx, key: &[Key], map: &Expr) -> Result<MarkValue> {
        let types = self.key_types(ctx, key)?;
        let name = match self.scopes.expand(map)? {
            Expr::SetRef(name) => name,
            Expr::Set(_, span) => {
                return Err(Error::new(
                    span,
                    "an anonymous map after 'mark set' is not supported by this loader; declare a map and use @name",
                ));
            }
            other => return Err(not_a_map(&other)),
        };
        let marks = |data: Option<&MapData>| match data {
            Some(MapData::Values(d)) if *d == [DataType::Mark] => Some(()),
            _ => None,
        };
        let (map, ()) = self.named_map(ctx.table, name, &types, marks, "must map to mark")?;
        Ok(MarkValue::Map {
            key: key.iter().map(|k| k.selector).collect(),
            map,
        })
    }

    fn log_prefix(&self, expr: &Expr) -> Result<String> {
        match self.scopes.expand(expr)? {
            Expr::Str(text) if text.text.len() > MAX_LOG_PREFIX => Err(Error::new(
                text.span,
                format!("log prefix is longer than {MAX_LOG_PREFIX} bytes"),
            )),
            Expr::Str(text) => Ok(text.text),
            other => Err(Error::new(
                other.span().clone(),
                format!(
                    "expected a quoted log prefix, got {}",
                    values::describe(&other)
                ),
            )),
        }
    }
}

/// Statements the bridge family does not have: NAT (nft refuses it), and
/// reject, which needs the kernel's nft_reject_bridge (this loader's
/// reference kernel lacks it, so its bytecode could not be verified).
fn bridge_statement(stmt: &syntax::Stmt) -> Result<()> {
    use syntax::StmtKind as S;
    let what = match &stmt.kind {
        S::Masquerade { .. } => "masquerade",
        S::Redirect { .. } => "redirect",
        S::Nat { dnat: true, .. } => "dnat",
        S::Nat { dnat: false, .. } => "snat",
        S::Reject { .. } => {
            return Err(Error::new(
                stmt.span.clone(),
                "reject in a bridge table is not supported by this loader",
            ));
        }
        _ => return Ok(()),
    };
    Err(Error::new(
        stmt.span.clone(),
        format!("{what} is not possible in a bridge table: NAT is only supported for IPv4/IPv6"),
    ))
}

/// Statements nft 1.0.6 marks terminal (STMT_F_TERMINAL): verdicts but
/// `continue`, `reject` and the nat statements. A verdict map is not.
fn is_terminal(stmt: &syntax::StmtKind) -> bool {
    use syntax::StmtKind as S;
    match stmt {
        S::Verdict(name) => name.text != "continue",
        S::Jump { .. }
        | S::Reject { .. }
        | S::Masquerade { .. }
        | S::Redirect { .. }
        | S::Nat { .. } => true,
        _ => false,
    }
}

/// `reject [with ...]`: which codes exist in which family.
fn reject(family: Family, with: &Option<Name>, code: &Option<Name>) -> Result<Reject> {
    let (Some(with), code) = (with, code) else {
        return Ok(Reject::Default);
    };
    type Codes = &'static [(&'static str, u8)];
    let (table, allowed, make): (Codes, bool, fn(u8) -> Reject) = match with.text.as_str() {
        "tcp" => return Ok(Reject::TcpReset),
        "icmp" => (symbols::ICMP_CODES, family != Family::Ip6, Reject::Icmp),
        "icmpv6" => (symbols::ICMPV6_CODES, family != Family::Ip, Reject::Icmpv6),
        _ => (symbols::ICMPX_CODES, family == Family::Inet, Reject::Icmpx),
    };
    if !allowed {
        return Err(Error::new(
            with.span.clone(),
            format!(
                "reject with {} is not possible in an {} table",
                with.text,
                family.name()
            ),
        ));
    }
    let Some(code) = code else {
        return Err(Error::new(with.span.clone(), "missing icmp code"));
    };
    lookup(table, &code.text).map(make).ok_or_else(|| {
        Error::new(
            code.span.clone(),
            format!(
                "unknown {} code '{}' (expected one of: {})",
                with.text,
                code.text,
                symbols::names(table)
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use crate::ruleset::test_support::{check_error, in_chain, in_input_chain};

    #[test]
    fn a_jump_to_an_undeclared_chain_is_an_error_at_the_target() {
        assert_eq!(
            check_error(&in_input_chain("jump nowhere")),
            "t.nft:4:6: no such chain 'nowhere' in table ip t"
        );
    }

    #[test]
    fn a_statement_after_a_verdict_is_an_error_as_in_nft() {
        assert_eq!(
            check_error(&in_input_chain("accept drop")),
            "t.nft:4:8: Statement after terminal statement has no effect"
        );
    }

    #[test]
    fn a_log_prefix_longer_than_the_kernel_takes_is_an_error_at_the_prefix() {
        let rule = format!("log prefix \"{}\"", "a".repeat(129));
        assert_eq!(
            check_error(&in_input_chain(&rule)),
            "t.nft:4:12: log prefix is longer than 127 bytes"
        );
    }

    #[test]
    fn reject_with_an_icmpv6_code_is_refused_in_an_ip_table() {
        assert_eq!(
            check_error(&in_input_chain("reject with icmpv6 type port-unreachable")),
            "t.nft:4:13: reject with icmpv6 is not possible in an ip table"
        );
    }

    #[test]
    fn reject_is_refused_in_a_bridge_table() {
        let text = in_chain("bridge", "type filter hook input priority 0", "reject");
        assert_eq!(
            check_error(&text),
            "t.nft:4:1: reject in a bridge table is not supported by this loader"
        );
    }
}
