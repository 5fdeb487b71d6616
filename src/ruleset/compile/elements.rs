//! Set and map elements in the kernel's layout, the way nft lays them out:
//! plain sets as they are; interval sets as sorted start elements each
//! followed by an end element (`NFT_SET_ELEM_INTERVAL_END`, one past the
//! range), with a leading end element at zero, nft's "first segment";
//! concatenated intervals as key and key end. Anonymous interval sets merge
//! overlapping and adjacent ranges (nft's auto-merge); named ones refuse
//! overlaps, as nft does.

use std::cmp::Ordering;

use crate::nftables::{self as nft, ELEM_INTERVAL_END, ElemData, Udata};

use super::super::ast::{DataType, Element, ElementData, MapData, Span};
use super::super::error::Error;
use super::types::{bounds, increment, pad4, scalar_bytes};
use super::verdict;

/// What the elements go into.
pub(super) struct Shape<'a> {
    pub key: &'a [DataType],
    pub data: Option<&'a MapData>,
    pub interval: bool,
    pub anonymous: bool,
    /// Whether the set gets nft's leading zero end element (its first
    /// elements: an anonymous set, or a named one that has none yet).
    pub first_segment: bool,
}

/// Elements for the kernel, each with the source element it came from.
pub(super) struct Lowered<'a> {
    pub elements: Vec<nft::Element>,
    pub origins: Vec<&'a Span>,
    /// The element count nft declares for the set (`NFTA_SET_DESC_SIZE`).
    /// For interval sets nft counts every range twice plus the leading end
    /// element, whether or not it sends each end element.
    pub size: u32,
}

const UDATA_ELEM_COMMENT: u8 = 0;
const UDATA_ELEM_FLAGS: u8 = 1;
/// `NFTNL_SET_ELEM_F_INTERVAL_OPEN`: a range that reaches the type's maximum,
/// so it has no end element.
const ELEM_F_INTERVAL_OPEN: u32 = 1;

fn at(span: &Span) -> impl Fn(String) -> Error + '_ {
    move |message| Error::new(span.clone(), message)
}

pub(super) fn lower<'a>(shape: &Shape<'_>, source: &'a [Element]) -> Result<Lowered<'a>, Error> {
    let mut out = Lowered {
        elements: Vec::new(),
        origins: Vec::new(),
        size: 0,
    };
    if !shape.interval {
        for element in source {
            let mut key = Vec::new();
            for value in &element.key {
                let super::super::ast::Value::Single(scalar) = value else {
                    return Err(Error::new(
                        element.span.clone(),
                        "ranges and prefixes need an interval set",
                    ));
                };
                let bytes = scalar_bytes(scalar).map_err(at(&element.span))?;
                key.extend(if shape.key.len() > 1 {
                    pad4(bytes)
                } else {
                    bytes
                });
            }
            out.push(element_with(key, element, shape)?, &element.span);
        }
        out.size = out.elements.len() as u32;
        return Ok(out);
    }
    if shape.key.len() > 1 {
        for element in source {
            let (mut low, mut high) = (Vec::new(), Vec::new());
            for value in &element.key {
                let (l, h) = bounds(value).map_err(at(&element.span))?;
                low.extend(pad4(l));
                high.extend(pad4(h));
            }
            let mut lowered = element_with(low, element, shape)?;
            lowered.key_end = Some(high);
            out.push(lowered, &element.span);
        }
        out.size = out.elements.len() as u32;
        return Ok(out);
    }
    intervals(shape, source, &mut out)?;
    Ok(out)
}

impl<'a> Lowered<'a> {
    fn push(&mut self, element: nft::Element, origin: &'a Span) {
        self.elements.push(element);
        self.origins.push(origin);
    }
}

/// An element with `key`, the source element's data and comment.
fn element_with(key: Vec<u8>, element: &Element, shape: &Shape<'_>) -> Result<nft::Element, Error> {
    let mut lowered = nft::Element::new(key);
    lowered.data = data(element, shape)?;
    if let Some(comment) = &element.comment {
        let mut udata = Udata::new();
        udata.put_strz(UDATA_ELEM_COMMENT, &super::cstring(comment, &element.span)?);
        lowered.udata = Some(udata);
    }
    Ok(lowered)
}

fn data(element: &Element, shape: &Shape<'_>) -> Result<Option<ElemData>, Error> {
    let (Some(map), Some(data)) = (shape.data, &element.data) else {
        return Ok(None);
    };
    Ok(Some(match data {
        ElementData::Verdict(v) => ElemData::Verdict(verdict(v)?),
        ElementData::Values(values) => {
            let concat = matches!(map, MapData::Values(types) if types.len() > 1);
            let mut bytes = Vec::new();
            for value in values {
                let b = scalar_bytes(value).map_err(at(&element.span))?;
                bytes.extend(if concat { pad4(b) } else { b });
            }
            ElemData::Value(bytes)
        }
    }))
}

struct Range<'a> {
    low: Vec<u8>,
    high: Vec<u8>,
    source: &'a Element,
}

fn intervals<'a>(
    shape: &Shape<'_>,
    source: &'a [Element],
    out: &mut Lowered<'a>,
) -> Result<(), Error> {
    let mut ranges = Vec::with_capacity(source.len());
    for element in source {
        let [value] = element.key.as_slice() else {
            return Err(Error::new(
                element.span.clone(),
                "expected one value per element",
            ));
        };
        let (low, high) = bounds(value).map_err(at(&element.span))?;
        ranges.push(Range {
            low,
            high,
            source: element,
        });
    }
    ranges.sort_by(|a, b| a.low.cmp(&b.low));
    let ranges = if shape.data.is_some() {
        // Maps are only sorted; nft neither merges nor checks them.
        ranges
    } else if shape.anonymous {
        merge(ranges)
    } else {
        refuse_overlaps(&ranges)?;
        ranges
    };

    out.size = 2 * ranges.len() as u32;
    let mut pending_end: Option<(Vec<u8>, &Span)> = None;
    for (i, range) in ranges.iter().enumerate() {
        let span = &range.source.span;
        if i == 0 && shape.first_segment && range.low.iter().any(|&b| b != 0) {
            out.push(end_element(vec![0; range.low.len()]), span);
            out.size += 1;
        }
        if let Some((end, end_span)) = pending_end.take() {
            // Anonymous sets drop an end element that the next range's
            // start makes redundant.
            if !shape.anonymous || end != range.low {
                out.push(end_element(end), end_span);
            }
        }
        let mut start = element_with(range.low.clone(), range.source, shape)?;
        match increment(&range.high) {
            Some(end) => pending_end = Some((end, span)),
            None => {
                let udata = start.udata.get_or_insert_with(Udata::new);
                udata.put_u32(UDATA_ELEM_FLAGS, ELEM_F_INTERVAL_OPEN);
            }
        }
        out.push(start, span);
    }
    if let Some((end, span)) = pending_end {
        out.push(end_element(end), span);
    }
    Ok(())
}

fn end_element(key: Vec<u8>) -> nft::Element {
    nft::Element {
        flags: ELEM_INTERVAL_END,
        ..nft::Element::new(key)
    }
}

/// nft's auto-merge: ranges inside an earlier one go, overlapping and
/// adjacent ones join it. `ranges` is sorted by start.
fn merge(ranges: Vec<Range<'_>>) -> Vec<Range<'_>> {
    let mut out: Vec<Range<'_>> = Vec::with_capacity(ranges.len());
    for range in ranges {
        if let Some(prev) = out.last_mut() {
            if range.high <= prev.high {
                continue;
            }
            let touches = increment(&prev.high).is_some_and(|next| range.low <= next);
            if range.low <= prev.high || touches {
                prev.high = range.high;
                continue;
            }
        }
        out.push(range);
    }
    out
}

fn refuse_overlaps(ranges: &[Range<'_>]) -> Result<(), Error> {
    for pair in ranges.windows(2) {
        let (prev, this) = (&pair[0], &pair[1]);
        let same = prev.low == this.low && prev.high == this.high;
        if !same && this.low.cmp(&prev.high) != Ordering::Greater {
            return Err(Error::new(
                this.source.span.clone(),
                "conflicting intervals specified",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::sync::Arc;

    use super::super::super::ast::{Scalar, Value};
    use super::*;

    fn element(key: Value) -> Element {
        Element {
            key: vec![key],
            data: None,
            comment: None,
            span: Span::new(Arc::from("t.nft"), 1, 1),
        }
    }

    fn port(p: u16) -> Scalar {
        Scalar::Service(p)
    }

    fn keys(lowered: &Lowered<'_>) -> Vec<(Vec<u8>, bool)> {
        lowered
            .elements
            .iter()
            .map(|e| (e.key.clone(), e.flags & ELEM_INTERVAL_END != 0))
            .collect()
    }

    fn anonymous(key: &[DataType]) -> Shape<'_> {
        Shape {
            key,
            data: None,
            interval: true,
            anonymous: true,
            first_segment: true,
        }
    }

    #[test]
    fn an_anonymous_interval_set_merges_adjacent_ranges_after_a_zero_end() {
        let source = [
            element(Value::Single(port(22))),
            element(Value::Single(port(23))),
            element(Value::Range(port(24), port(30))),
            element(Value::Single(port(80))),
        ];
        let lowered = lower(&anonymous(&[DataType::InetService]), &source).unwrap();
        assert_eq!(
            keys(&lowered),
            [
                (vec![0, 0], true),
                (vec![0, 22], false),
                (vec![0, 31], true),
                (vec![0, 80], false),
                (vec![0, 81], true)
            ]
        );
    }

    #[test]
    fn a_range_to_the_maximum_has_no_end_element_and_is_marked_open() {
        let source = [element(Value::Range(port(1024), port(65535)))];
        let lowered = lower(&anonymous(&[DataType::InetService]), &source).unwrap();
        assert_eq!(keys(&lowered), [(vec![0, 0], true), (vec![4, 0], false)]);
        assert_eq!(
            lowered.elements[1].udata.as_ref().unwrap().as_bytes(),
            [1, 4, 1, 0, 0, 0]
        );
    }

    #[test]
    fn a_named_interval_set_refuses_overlapping_ranges() {
        let source = [
            element(Value::Prefix(Ipv4Addr::new(10, 0, 0, 0).into(), 8)),
            element(Value::Prefix(Ipv4Addr::new(10, 1, 0, 0).into(), 16)),
        ];
        let shape = Shape {
            anonymous: false,
            ..anonymous(&[DataType::Ipv4Addr])
        };
        let err = lower(&shape, &source).err().unwrap();
        assert_eq!(err.message, "conflicting intervals specified");
    }

    #[test]
    fn a_later_addition_to_a_set_with_elements_gets_no_zero_end() {
        let source = [element(Value::Single(Scalar::Ipv4(Ipv4Addr::new(
            10, 0, 0, 1,
        ))))];
        let shape = Shape {
            anonymous: false,
            first_segment: false,
            ..anonymous(&[DataType::Ipv4Addr])
        };
        let lowered = lower(&shape, &source).unwrap();
        assert_eq!(
            keys(&lowered),
            [(vec![10, 0, 0, 1], false), (vec![10, 0, 0, 2], true)]
        );
    }
}
