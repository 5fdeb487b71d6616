//! Base chains and what their statements need: the hook and priority of a
//! chain, and (after every rule is checked) that each statement needing a
//! nat chain or certain hooks gets them in every base chain that reaches it
//! through jumps, gotos and verdict maps, as the kernel checks at commit.

use super::*;

/// nft's priority keywords of a family: name, value, and the one hook nft
/// 1.0.6 takes it on (`None`: every hook).
type PriorityKeywords = &'static [(&'static str, i64, Option<Hook>)];

/// ip, ip6 and inet (nft's `std_prios`).
const IP_PRIORITIES: PriorityKeywords = &[
    ("raw", -300, None),
    ("mangle", -150, None),
    ("dstnat", -100, Some(Hook::Prerouting)),
    ("filter", 0, None),
    ("security", 50, None),
    ("srcnat", 100, Some(Hook::Postrouting)),
];

/// bridge (nft's `bridge_std_prios`, the kernel's NF_BR_PRI_*).
const BRIDGE_PRIORITIES: PriorityKeywords = &[
    ("dstnat", -300, Some(Hook::Prerouting)),
    ("filter", -200, None),
    ("out", 100, Some(Hook::Output)),
    ("srcnat", 300, Some(Hook::Postrouting)),
];

impl Checker {
    /// `type T hook H priority P`, with the combinations the kernel and nft
    /// 1.0.6 accept.
    pub(super) fn hook_spec(&self, family: Family, spec: &syntax::HookSpec) -> Result<BaseChain> {
        let chain_type = match spec.chain_type.text.as_str() {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            other => {
                return Err(Error::new(
                    spec.chain_type.span.clone(),
                    format!("unknown chain type '{other}' (expected filter, nat or route)"),
                ));
            }
        };
        let hook = match spec.hook.text.as_str() {
            "prerouting" => Hook::Prerouting,
            "input" => Hook::Input,
            "forward" => Hook::Forward,
            "output" => Hook::Output,
            "postrouting" => Hook::Postrouting,
            other => {
                return Err(Error::new(
                    spec.hook.span.clone(),
                    format!(
                        "unknown hook '{other}' for family {} (expected prerouting, input, forward, output or postrouting)",
                        family.name()
                    ),
                ));
            }
        };
        if family == Family::Bridge && chain_type != ChainType::Filter {
            return Err(Error::new(
                spec.chain_type.span.clone(),
                format!(
                    "a {} chain is not possible in a bridge table (the bridge family has only filter chains)",
                    chain_type.name()
                ),
            ));
        }
        let supported = match chain_type {
            ChainType::Filter => true,
            ChainType::Nat => hook != Hook::Forward,
            ChainType::Route => hook == Hook::Output,
        };
        if !supported {
            return Err(Error::new(
                spec.hook.span.clone(),
                format!(
                    "a {} chain cannot use the {} hook",
                    chain_type.name(),
                    hook.name()
                ),
            ));
        }
        let priority = priority(family, hook, &spec.priority)?;
        Ok(BaseChain {
            chain_type,
            hook,
            priority,
            policy: None,
            span: spec.span.clone(),
        })
    }

    fn chain_info(&mut self, ctx: &RuleCtx) -> Option<&mut ChainInfo> {
        self.tables
            .get_mut(ctx.table)
            .and_then(|t| t.chains.get_mut(ctx.chain))
    }

    /// Records that `what` at `span` needs a nat chain (`nat`) on one of
    /// `hooks`; checked once all chains are known.
    pub(super) fn need(
        &mut self,
        ctx: &RuleCtx,
        span: &Span,
        what: &'static str,
        nat: bool,
        hooks: &'static [Hook],
    ) {
        let need = Need {
            span: span.clone(),
            what,
            nat,
            hooks,
        };
        if let Some(chain) = self.chain_info(ctx) {
            chain.needs.push(need);
        }
    }

    pub(super) fn edge(&mut self, ctx: &RuleCtx, edge: Edge) {
        if let Some(chain) = self.chain_info(ctx) {
            chain.edges.push(edge);
        }
    }

    /// Like the kernel at commit: every statement that needs a nat chain or
    /// certain hooks must get them in every base chain that reaches it,
    /// directly or through jumps, gotos and verdict maps.
    pub(super) fn validate_hooks(&self) -> Result<()> {
        let mut ids: Vec<&TableId> = self.tables.keys().collect();
        ids.sort_by(|a, b| (a.family.name(), &a.name).cmp(&(b.family.name(), &b.name)));
        for id in ids {
            let table = &self.tables[id];
            for name in &table.chain_order {
                let Some(base) = table.chains.get(name).and_then(|c| c.base.as_ref()) else {
                    continue;
                };
                for (chain, need) in reachable_needs(table, name) {
                    let type_ok = !need.nat || base.chain_type == ChainType::Nat;
                    if type_ok && need.hooks.contains(&base.hook) {
                        continue;
                    }
                    return Err(hook_error(need, chain, name, base));
                }
            }
        }
        Ok(())
    }
}

/// The needs of every chain reachable from `start`, with the chain they are in.
fn reachable_needs<'t>(table: &'t TableInfo, start: &'t str) -> Vec<(&'t str, &'t Need)> {
    let mut seen: Vec<&str> = vec![start];
    let mut todo: Vec<&str> = vec![start];
    let mut out = Vec::new();
    while let Some(name) = todo.pop() {
        let Some(chain) = table.chains.get(name) else {
            continue;
        };
        out.extend(chain.needs.iter().map(|need| (name, need)));
        for edge in &chain.edges {
            let targets: Vec<&str> = match edge {
                Edge::Chain(target) => vec![target.as_str()],
                Edge::Vmap(map) => table
                    .sets
                    .get(map)
                    .map(|s| s.jumps.iter().map(String::as_str).collect())
                    .unwrap_or_default(),
            };
            for target in targets {
                if !seen.contains(&target) {
                    seen.push(target);
                    todo.push(target);
                }
            }
        }
    }
    out
}

fn hook_error(need: &Need, chain: &str, base_name: &str, base: &BaseChain) -> Error {
    let hooks = need
        .hooks
        .iter()
        .map(|h| h.name())
        .collect::<Vec<_>>()
        .join(" or ");
    let wanted = if need.nat {
        format!("a nat chain on the {hooks} hook")
    } else {
        format!("the {hooks} hook")
    };
    let found = if chain == base_name {
        format!(
            "'{chain}' is a {} chain on the {} hook",
            base.chain_type.name(),
            base.hook.name()
        )
    } else {
        format!(
            "chain '{chain}' is reached from '{base_name}', a {} chain on the {} hook",
            base.chain_type.name(),
            base.hook.name()
        )
    };
    Error::new(
        need.span.clone(),
        format!("{} is only valid in {wanted}, but {found}", need.what),
    )
}

/// A chain priority as a number: the family's keyword (see
/// [`IP_PRIORITIES`], [`BRIDGE_PRIORITIES`]) plus an offset, or a number.
/// nft 1.0.6 takes `dstnat` only on prerouting, `srcnat` only on
/// postrouting and the bridge's `out` only on output.
fn priority(family: Family, hook: Hook, spec: &syntax::Priority) -> Result<i32> {
    let keywords = match family {
        Family::Bridge => BRIDGE_PRIORITIES,
        Family::Ip | Family::Ip6 | Family::Inet => IP_PRIORITIES,
    };
    let base: i64 = match &spec.base {
        syntax::PriorityBase::Number(n) => *n,
        syntax::PriorityBase::Keyword(word) => {
            let Some(&(_, value, only)) = keywords.iter().find(|(name, ..)| *name == word.text)
            else {
                let names: Vec<&str> = keywords.iter().map(|(name, ..)| *name).collect();
                return Err(Error::new(
                    word.span.clone(),
                    format!(
                        "unknown priority '{}' in the {} family (expected a number or {})",
                        word.text,
                        family.name(),
                        names.join(", ")
                    ),
                ));
            };
            if only.is_some_and(|only| only != hook) {
                return Err(Error::new(
                    spec.span.clone(),
                    format!(
                        "'{}' is an invalid priority on the {} hook; write its number ({value})",
                        word.text,
                        hook.name()
                    ),
                ));
            }
            value
        }
    };
    base.checked_add(spec.offset)
        .and_then(|p| i32::try_from(p).ok())
        .ok_or_else(|| Error::new(spec.span.clone(), "priority out of range"))
}

#[cfg(test)]
mod tests {
    use crate::ruleset::ast::CommandKind;
    use crate::ruleset::test_support::{check_error, check_ok, in_chain, in_input_chain};

    #[test]
    fn a_priority_keyword_on_a_hook_nft_refuses_it_on_says_its_number() {
        let text = in_chain(
            "ip",
            "type filter hook postrouting priority dstnat",
            "accept",
        );
        assert_eq!(
            check_error(&text),
            "t.nft:3:39: 'dstnat' is an invalid priority on the postrouting hook; write its number (-100)"
        );
    }

    #[test]
    fn an_unknown_priority_keyword_lists_the_familys_keywords() {
        let text = in_chain("ip", "type filter hook input priority fliter", "accept");
        assert_eq!(
            check_error(&text),
            "t.nft:3:33: unknown priority 'fliter' in the ip family (expected a number or raw, mangle, dstnat, filter, security, srcnat)"
        );
    }

    #[test]
    fn a_priority_keyword_plus_an_offset_is_a_number() {
        let text = in_chain(
            "ip",
            "type nat hook prerouting priority dstnat + 10",
            "accept",
        );
        let ruleset = check_ok(&text);
        let priority = ruleset.commands.iter().find_map(|c| match &c.kind {
            CommandKind::AddChain(chain) => chain.base.as_ref().map(|b| b.priority),
            _ => None,
        });
        assert_eq!(priority, Some(-90));
    }

    #[test]
    fn masquerade_in_a_filter_chain_is_an_error_at_the_statement() {
        assert_eq!(
            check_error(&in_input_chain("masquerade")),
            "t.nft:4:1: masquerade is only valid in a nat chain on the postrouting hook, but 'c' is a filter chain on the input hook"
        );
    }

    #[test]
    fn a_need_is_checked_in_every_base_chain_that_jumps_to_it() {
        let text = "table ip t {\nchain c {\ntype filter hook input priority 0\njump d\n}\nchain d {\nmasquerade\n}\n}\n";
        assert_eq!(
            check_error(text),
            "t.nft:7:1: masquerade is only valid in a nat chain on the postrouting hook, but chain 'd' is reached from 'c', a filter chain on the input hook"
        );
    }
}
