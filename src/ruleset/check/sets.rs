//! Sets and maps: their key and data types, their elements (typed against
//! the key, no overlapping intervals), and the lookup of a named set.

use super::declarations::{check_comment, describe_table};
use super::*;

/// The kernel's register space for a concatenated key: 16 words.
const MAX_KEY_BYTES: usize = 64;

impl Checker {
    pub(super) fn set_block(&mut self, id: &TableId, block: &SetBlock) -> Result<()> {
        self.scopes.push();
        let result = self.set_block_scoped(id, block);
        self.scopes.pop();
        result
    }

    fn set_block_scoped(&mut self, id: &TableId, block: &SetBlock) -> Result<()> {
        let mut types: Option<(Vec<DataType>, Option<MapData>)> = None;
        let mut flags = SetFlags::default();
        let mut timeout_ms = None;
        let mut size = None;
        let mut comment = None;
        let mut element_exprs = Vec::new();
        for item in &block.items {
            match item {
                SetItem::Binding(binding) => self.binding(binding)?,
                SetItem::Type { span, key, data } => {
                    if types.is_some() {
                        return Err(Error::new(span.clone(), "the type is already given"));
                    }
                    types = Some(set_types(block, span, key, data.as_deref())?);
                }
                SetItem::Flags(names) => {
                    for flag in names {
                        match flag.text.as_str() {
                            "interval" => flags.interval = true,
                            "constant" => flags.constant = true,
                            "timeout" => flags.timeout = true,
                            other => {
                                return Err(Error::new(
                                    flag.span.clone(),
                                    format!(
                                        "set flag '{other}' is not supported (expected interval, constant or timeout)"
                                    ),
                                ));
                            }
                        }
                    }
                }
                SetItem::Timeout(text) => {
                    let ms = symbols::parse_duration(&text.text)
                        .map_err(|message| Error::new(text.span.clone(), message))?;
                    timeout_ms = Some(ms);
                    // The kernel takes a timeout only on sets with the flag;
                    // nft sets it implicitly.
                    flags.timeout = true;
                }
                SetItem::Size { span, value } => {
                    size = Some(u32::try_from(*value).map_err(|_| {
                        Error::new(span.clone(), "set size is larger than 4294967295")
                    })?);
                }
                SetItem::Comment(text) => comment = Some(check_comment(text)?),
                SetItem::Elements(expr) => {
                    if types.is_none() {
                        return Err(Error::new(
                            expr.span().clone(),
                            "give the set's type before its elements",
                        ));
                    }
                    element_exprs.push(self.scopes.expand(expr)?);
                }
            }
        }
        let Some((key, data)) = types else {
            return Err(Error::new(
                block.name.span.clone(),
                format!(
                    "{} '{}' has no type",
                    if block.is_map { "map" } else { "set" },
                    block.name.text
                ),
            ));
        };
        let table = self.table_mut(id);
        if let Some(old) = table.sets.get(&block.name.text) {
            if old.key != key || old.data != data {
                return Err(Error::new(
                    block.name.span.clone(),
                    format!("'{}' already exists with another type", block.name.text),
                ));
            }
        } else {
            table.sets.insert(
                block.name.text.clone(),
                SetInfo {
                    key: key.clone(),
                    data: data.clone(),
                    flags,
                    jumps: Vec::new(),
                    intervals: Disjoint::default(),
                },
            );
        }
        let mut elements = Vec::new();
        for expr in &element_exprs {
            elements.extend(self.typed_elements(id, &block.name, expr)?);
        }
        self.emit(
            &block.span,
            CommandKind::AddSet(ast::Set {
                table: id.clone(),
                name: block.name.text.clone(),
                key,
                data,
                flags,
                timeout_ms,
                size,
                comment,
                elements,
            }),
        );
        Ok(())
    }

    /// `add element`: the set must be declared.
    pub(super) fn elements_of(
        &mut self,
        id: &TableId,
        set: &Name,
        expr: &Expr,
    ) -> Result<Vec<Element>> {
        let expr = self.scopes.expand(expr)?;
        self.typed_elements(id, set, &expr)
    }

    /// Elements for the named set `set`, checked against its types and flags.
    fn typed_elements(&mut self, id: &TableId, set: &Name, expr: &Expr) -> Result<Vec<Element>> {
        let info = self.set_info(id, set)?;
        let (key, data, interval) = (info.key.clone(), info.data.clone(), info.flags.interval);
        let Expr::Set(elems, _) = expr else {
            return Err(Error::new(
                expr.span().clone(),
                format!(
                    "expected elements {{ ... }}, got {}",
                    values::describe(expr)
                ),
            ));
        };
        let mut out = Vec::with_capacity(elems.len());
        let mut jumps = Vec::new();
        for elem in elems {
            let element = self.element(id, elem, &key, data.as_ref(), &mut jumps)?;
            if !interval && element.key.iter().any(Value::is_interval) {
                return Err(Error::new(
                    elem.span.clone(),
                    format!(
                        "'{}' needs 'flags interval' for ranges, prefixes and wildcards",
                        set.text
                    ),
                ));
            }
            out.push(element);
        }
        if let Some(info) = self.table_mut(id).sets.get_mut(&set.text) {
            info.jumps.extend(jumps);
            if interval {
                no_overlaps(&mut info.intervals, &out)?;
            }
        }
        Ok(intervals::dedupe(out))
    }

    pub(super) fn set_info(&self, id: &TableId, set: &Name) -> Result<&SetInfo> {
        self.tables
            .get(id)
            .and_then(|t| t.sets.get(&set.text))
            .ok_or_else(|| {
                let hint = self.tables.get(id).map_or(String::new(), |t| {
                    suggest::did_you_mean(&set.text, t.sets.keys().map(String::as_str), "@")
                });
                Error::new(
                    set.span.clone(),
                    format!(
                        "no such set or map '{}' in table {}{hint}",
                        set.text,
                        describe_table(id)
                    ),
                )
            })
    }

    /// `@name` as the map of a statement (`KEY map @name`, `KEY vmap
    /// @name`): declared in table `id` with the key's types and data that
    /// `fits` accepts, handing back what it makes of the data; otherwise
    /// the error `@name {needs}`.
    pub(super) fn named_map<T>(
        &self,
        id: &TableId,
        name: Name,
        key: &[DataType],
        fits: impl FnOnce(Option<&MapData>) -> Option<T>,
        needs: &str,
    ) -> Result<(MapSource, T)> {
        let info = self.set_info(id, &name)?;
        let Some(data) = fits(info.data.as_ref()) else {
            return Err(Error::new(
                name.span.clone(),
                format!("@{} {needs}", name.text),
            ));
        };
        check_key_types(&name, &info.key, key)?;
        let source = MapSource::Named(SetRef {
            name: name.text,
            span: name.span,
        });
        Ok((source, data))
    }

    /// `{ KEY : DATA, ... }` as the map of a statement: its elements, which
    /// may not overlap; the chains its verdicts jump to become the rule's
    /// chain's edges.
    pub(super) fn anonymous_map(
        &mut self,
        ctx: &RuleCtx,
        elems: &[syntax::SetElem],
        key: &[DataType],
        data: &MapData,
    ) -> Result<MapSource> {
        let mut elements = Vec::with_capacity(elems.len());
        let mut jumps = Vec::new();
        for elem in elems {
            elements.push(self.element(ctx.table, elem, key, Some(data), &mut jumps)?);
        }
        for jump in jumps {
            self.edge(ctx, Edge::Chain(jump));
        }
        no_overlaps(&mut Disjoint::default(), &elements)?;
        Ok(MapSource::Anonymous(elements))
    }

    /// One element `KEY [comment] [: DATA]` of a set (no `data` type) or map.
    pub(super) fn element(
        &self,
        id: &TableId,
        elem: &syntax::SetElem,
        key: &[DataType],
        data: Option<&MapData>,
        jumps: &mut Vec<String>,
    ) -> Result<Element> {
        let key_values = values::tuple(&elem.key, key)?;
        let data = match (data, &elem.data) {
            (None, None) => None,
            (None, Some(d)) => {
                return Err(Error::new(
                    d.span().clone(),
                    "a set element has no data; use a map",
                ));
            }
            (Some(_), None) => {
                return Err(Error::new(
                    elem.span.clone(),
                    "a map element needs its data: KEY : DATA",
                ));
            }
            (Some(MapData::Verdict), Some(d)) => {
                let verdict = self.verdict(id, d)?;
                if let Verdict::Jump(target) | Verdict::Goto(target) = &verdict {
                    jumps.push(target.name.clone());
                }
                Some(ElementData::Verdict(verdict))
            }
            (Some(MapData::Values(types)), Some(d)) => {
                Some(ElementData::Values(values::data_tuple(d, types)?))
            }
        };
        Ok(Element {
            key: key_values,
            data,
            comment: elem.comment.as_ref().map(check_comment).transpose()?,
            span: elem.span.clone(),
        })
    }
}

/// Adds the elements' intervals to `set`, refusing overlaps as nft does.
pub(super) fn no_overlaps(set: &mut Disjoint, elements: &[Element]) -> Result<()> {
    for element in elements {
        if let Some((low, high)) = intervals::bounds(&element.key) {
            if !set.insert(low, high) {
                return Err(Error::new(
                    element.span.clone(),
                    "conflicting intervals specified",
                ));
            }
        }
    }
    Ok(())
}

/// The types of the named set `name` must be those of the key.
pub(super) fn check_key_types(name: &Name, set_key: &[DataType], key: &[DataType]) -> Result<()> {
    if set_key == key {
        return Ok(());
    }
    Err(Error::new(
        name.span.clone(),
        format!(
            "@{} has type {}, but the key is {}",
            name.text,
            values::type_names(set_key),
            values::type_names(key)
        ),
    ))
}

/// Set and map types from their names.
fn set_types(
    block: &SetBlock,
    span: &Span,
    key: &[Name],
    data: Option<&[Name]>,
) -> Result<(Vec<DataType>, Option<MapData>)> {
    let key = key.iter().map(set_type).collect::<Result<Vec<_>>>()?;
    if ast::concat_len(&key) > MAX_KEY_BYTES {
        return Err(Error::new(
            span.clone(),
            format!("a key may hold at most {MAX_KEY_BYTES} bytes"),
        ));
    }
    let data = match (block.is_map, data) {
        (false, None) => None,
        (false, Some(_)) => {
            return Err(Error::new(
                span.clone(),
                "a set has no data type; use a map",
            ));
        }
        (true, None) => {
            return Err(Error::new(
                span.clone(),
                "a map needs a data type: type KEY : DATA",
            ));
        }
        (true, Some([verdict])) if verdict.text == "verdict" => Some(MapData::Verdict),
        (true, Some(names)) => {
            let types = names.iter().map(set_type).collect::<Result<Vec<_>>>()?;
            if ast::concat_len(&types) > MAX_KEY_BYTES {
                return Err(Error::new(
                    span.clone(),
                    format!("map data may hold at most {MAX_KEY_BYTES} bytes"),
                ));
            }
            Some(MapData::Values(types))
        }
    };
    Ok((key, data))
}

fn set_type(name: &Name) -> Result<DataType> {
    Ok(match name.text.as_str() {
        "ipv4_addr" => DataType::Ipv4Addr,
        "ipv6_addr" => DataType::Ipv6Addr,
        "inet_service" => DataType::InetService,
        "inet_proto" => DataType::InetProto,
        "ifname" => DataType::Ifname,
        "mark" => DataType::Mark,
        "ether_addr" => DataType::EtherAddr,
        "ether_type" => DataType::EtherType,
        "arp_op" => DataType::ArpOp,
        "verdict" => {
            return Err(Error::new(
                name.span.clone(),
                "verdict is only a map's whole data type: type KEY : verdict",
            ));
        }
        other => {
            return Err(Error::new(
                name.span.clone(),
                format!(
                    "type '{other}' is not supported (expected ipv4_addr, ipv6_addr, inet_service, inet_proto, ifname, mark, ether_addr, ether_type or arp_op)"
                ),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use crate::ruleset::test_support::check_error;

    fn set(items: &str) -> String {
        format!("table ip t {{\nset s {{\n{items}\n}}\n}}\n")
    }

    #[test]
    fn overlapping_intervals_are_an_error_at_the_second() {
        let text = set("type ipv4_addr\nflags interval\nelements = { 10.0.0.0/8, 10.1.0.0/16 }");
        assert_eq!(
            check_error(&text),
            "t.nft:5:26: conflicting intervals specified"
        );
    }

    #[test]
    fn an_element_of_the_wrong_type_is_an_error_at_the_element() {
        let text = set("type ipv4_addr\nelements = { 80 }");
        assert_eq!(
            check_error(&text),
            "t.nft:4:14: expected an IPv4 address, got number 80"
        );
    }

    #[test]
    fn an_unknown_set_type_is_an_error_listing_the_supported_ones() {
        let err = check_error(&set("type ipv5_addr"));
        assert!(
            err.starts_with("t.nft:3:6: type 'ipv5_addr' is not supported (expected ipv4_addr,"),
            "{err}"
        );
    }
}
