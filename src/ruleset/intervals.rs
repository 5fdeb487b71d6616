//! Interval sets the way nft treats them: overlapping elements of a named
//! set or an anonymous map are refused ("conflicting intervals"), while an
//! anonymous set's overlapping and adjacent intervals are merged into one
//! (`{ 10-20, 21-30 }` becomes `{ 10-30 }`), and duplicates dropped.
//!
//! Only one-part keys of ordered types are handled here; concatenated
//! intervals and interface-name wildcards are left to the kernel.

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::ast::{Element, Scalar, Value};

/// The numeric bounds of a one-part interval key, if it has them.
pub fn bounds(key: &[Value]) -> Option<(u128, u128)> {
    let [value] = key else {
        return None;
    };
    match value {
        Value::Single(s) => ordinal(s).map(|o| (o, o)),
        Value::Range(low, high) => Some((ordinal(low)?, ordinal(high)?)),
        Value::Prefix(IpAddr::V4(addr), len) => {
            let host = u32::MAX.checked_shr(u32::from(*len)).unwrap_or(0);
            let start = u32::from(*addr);
            Some((start.into(), (start | host).into()))
        }
        Value::Prefix(IpAddr::V6(addr), len) => {
            let host = u128::MAX.checked_shr(u32::from(*len)).unwrap_or(0);
            let start = u128::from(*addr);
            Some((start, start | host))
        }
    }
}

fn ordinal(s: &Scalar) -> Option<u128> {
    Some(match s {
        Scalar::Ipv4(a) => u32::from(*a).into(),
        Scalar::Ipv6(a) => u128::from(*a),
        Scalar::Service(p) => (*p).into(),
        Scalar::Proto(p) => (*p).into(),
        Scalar::Mark(m) => (*m).into(),
        Scalar::EtherAddr(a) => super::values::ether_ordinal(a),
        Scalar::ArpOp(v) | Scalar::Int16(v) => (*v).into(),
        Scalar::Int8(v) => (*v).into(),
        _ => return None,
    })
}

/// `n` as a scalar of the same type as `like`.
fn scalar_like(like: &Scalar, n: u128) -> Scalar {
    // The bounds came from scalars of this type, so they fit.
    match like {
        Scalar::Ipv4(_) => Scalar::Ipv4(Ipv4Addr::from(n as u32)),
        Scalar::Ipv6(_) => Scalar::Ipv6(Ipv6Addr::from(n)),
        Scalar::Service(_) => Scalar::Service(n as u16),
        Scalar::Proto(_) => Scalar::Proto(n as u8),
        Scalar::EtherAddr(_) => {
            let bytes = (n as u64).to_be_bytes();
            let mut addr = [0u8; 6];
            addr.copy_from_slice(&bytes[2..]);
            Scalar::EtherAddr(addr)
        }
        Scalar::ArpOp(_) => Scalar::ArpOp(n as u16),
        Scalar::Int16(_) => Scalar::Int16(n as u16),
        Scalar::Int8(_) => Scalar::Int8(n as u8),
        _ => Scalar::Mark(n as u32),
    }
}

/// The disjoint intervals of a named interval set, to refuse overlaps.
#[derive(Debug, Default, Clone)]
pub struct Disjoint {
    /// Start to end, both inclusive.
    by_start: BTreeMap<u128, u128>,
}

impl Disjoint {
    /// Adds `[low, high]`; false when it overlaps another interval. The
    /// same interval again is fine (the kernel keeps one).
    pub fn insert(&mut self, low: u128, high: u128) -> bool {
        if self.by_start.get(&low) == Some(&high) {
            return true;
        }
        let before = self.by_start.range(..=low).next_back();
        if before.is_some_and(|(_, end)| *end >= low) {
            return false;
        }
        let after = self.by_start.range(low..).next();
        if after.is_some_and(|(start, _)| *start <= high) {
            return false;
        }
        self.by_start.insert(low, high);
        true
    }
}

/// Drops elements whose key appeared before (sets only: no data).
pub fn dedupe(elements: Vec<Element>) -> Vec<Element> {
    let mut seen = HashSet::new();
    elements
        .into_iter()
        .filter(|e| e.data.is_some() || seen.insert(e.key.clone()))
        .collect()
}

/// An anonymous interval set with overlapping and adjacent intervals merged,
/// as nft does before sending it.
pub fn merge(elements: Vec<Element>) -> Vec<Element> {
    let all_bounds: Option<Vec<(u128, u128)>> = elements.iter().map(|e| bounds(&e.key)).collect();
    let Some(all_bounds) = all_bounds else {
        return elements;
    };
    let mut order: Vec<usize> = (0..elements.len()).collect();
    order.sort_by_key(|&i| all_bounds[i]);
    // Groups of element indexes whose intervals touch or overlap.
    let mut groups: Vec<(u128, u128, Vec<usize>)> = Vec::new();
    for i in order {
        let (low, high) = all_bounds[i];
        match groups.last_mut() {
            Some((_, end, members)) if low <= end.saturating_add(1) => {
                *end = (*end).max(high);
                members.push(i);
            }
            _ => groups.push((low, high, vec![i])),
        }
    }
    groups
        .into_iter()
        .map(|(low, high, members)| {
            let first = &elements[members[0]];
            if members.len() == 1 {
                return first.clone();
            }
            let like = match &first.key[..] {
                [Value::Single(s) | Value::Range(s, _)] => s.clone(),
                [Value::Prefix(IpAddr::V4(a), _)] => Scalar::Ipv4(*a),
                [Value::Prefix(IpAddr::V6(a), _)] => Scalar::Ipv6(*a),
                _ => Scalar::Mark(0),
            };
            let value = if low == high {
                Value::Single(scalar_like(&like, low))
            } else {
                Value::Range(scalar_like(&like, low), scalar_like(&like, high))
            };
            Element {
                key: vec![value],
                data: None,
                comment: first.comment.clone(),
                span: first.span.clone(),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ruleset::ast::Span;
    use std::sync::Arc;

    fn element(value: Value) -> Element {
        Element {
            key: vec![value],
            data: None,
            comment: None,
            span: Span::new(Arc::from("t"), 1, 1),
        }
    }

    fn port(p: u16) -> Scalar {
        Scalar::Service(p)
    }

    #[test]
    fn anonymous_sets_merge_overlapping_and_adjacent_intervals_like_nft() {
        let merged = merge(vec![
            element(Value::Range(port(10), port(20))),
            element(Value::Range(port(21), port(30))),
            element(Value::Single(port(25))),
            element(Value::Single(port(41))),
            element(Value::Single(port(40))),
        ]);
        let keys: Vec<_> = merged.into_iter().map(|e| e.key).collect();
        assert_eq!(
            keys,
            vec![
                vec![Value::Range(port(10), port(30))],
                vec![Value::Range(port(40), port(41))]
            ]
        );
    }

    #[test]
    fn a_named_set_refuses_overlaps_but_takes_the_same_interval_twice() {
        let mut set = Disjoint::default();
        assert!(set.insert(10, 20));
        assert!(set.insert(10, 20));
        assert!(set.insert(21, 30));
        assert!(!set.insert(20, 20));
        assert!(!set.insert(0, 10));
        assert!(!set.insert(5, 40));
    }

    #[test]
    fn prefixes_cover_their_whole_range() {
        let key = vec![Value::Prefix("10.0.0.0".parse().unwrap(), 8)];
        assert_eq!(bounds(&key), Some((0x0a00_0000, 0x0aff_ffff)));
        let all = vec![Value::Prefix("::".parse().unwrap(), 0)];
        assert_eq!(bounds(&all), Some((0, u128::MAX)));
    }
}
