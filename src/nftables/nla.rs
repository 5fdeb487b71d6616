//! Reading what the kernel sends back: netlink messages, their attributes,
//! and acks with extended error reports. Plain byte parsing, no unsafe.

/// Netlink message header fields we use.
#[derive(Debug, Clone, Copy)]
pub(super) struct Header {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
}

pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;
const NLM_F_CAPPED: u16 = 0x100;
const NLM_F_ACK_TLVS: u16 = 0x200;
const NLMSGERR_ATTR_MSG: u16 = 1;
const NLMSGERR_ATTR_OFFS: u16 = 2;
const HEADER_LEN: usize = 16;

fn u16_at(buf: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(buf.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(buf: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(buf.get(at..at + 4)?.try_into().ok()?))
}

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// The messages in one datagram: header and payload after the header.
/// Stops at the first malformed header.
pub(super) fn messages(mut buf: &[u8]) -> impl Iterator<Item = (Header, &[u8])> {
    std::iter::from_fn(move || {
        let len = u32_at(buf, 0)? as usize;
        if len < HEADER_LEN || len > buf.len() {
            return None;
        }
        let header = Header {
            ty: u16_at(buf, 4)?,
            flags: u16_at(buf, 6)?,
            seq: u32_at(buf, 8)?,
        };
        let payload = &buf[HEADER_LEN..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((header, payload))
    })
}

/// The attributes in `buf`: type (without the nested/byte-order bits) and payload.
pub(super) fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = u16_at(buf, 0)? as usize;
        if len < 4 || len > buf.len() {
            return None;
        }
        let ty = u16_at(buf, 2)? & 0x3fff;
        let payload = &buf[4..len];
        buf = buf.get(align4(len)..).unwrap_or(&[]);
        Some((ty, payload))
    })
}

/// The payload of the first attribute of type `ty`.
pub(super) fn attr(buf: &[u8], ty: u16) -> Option<&[u8]> {
    attrs(buf).find(|&(t, _)| t == ty).map(|(_, p)| p)
}

pub(super) fn be32(payload: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(payload.get(..4)?.try_into().ok()?))
}

pub(super) fn be64(payload: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(payload.get(..8)?.try_into().ok()?))
}

/// A C string attribute, without its NUL.
pub(super) fn strz(payload: &[u8]) -> &[u8] {
    payload.split(|&b| b == 0).next().unwrap_or(payload)
}

/// An `NLMSG_ERROR` message: an ack when `errno` is 0.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Ack {
    /// The sequence number of the message acknowledged.
    pub seq: u32,
    /// A positive errno, or 0.
    pub errno: i32,
    /// The kernel's extended error message, if any.
    pub message: Option<String>,
    /// Offset of the offending attribute from the start of the message
    /// acknowledged, if the kernel named one.
    pub offset: Option<u32>,
}

/// Parses an `NLMSG_ERROR` payload.
pub(super) fn ack(header: Header, payload: &[u8]) -> Option<Ack> {
    let error = u32_at(payload, 0)? as i32;
    // The original header follows the error code; its sequence number is the
    // one we sent (the outer header repeats it).
    let original_len = u32_at(payload, 4)? as usize;
    let mut tlvs_at = 4 + HEADER_LEN;
    if header.flags & NLM_F_CAPPED == 0 {
        tlvs_at = 4 + align4(original_len);
    }
    let mut ack = Ack {
        seq: header.seq,
        errno: error.saturating_neg(),
        message: None,
        offset: None,
    };
    if header.flags & NLM_F_ACK_TLVS != 0 {
        for (ty, value) in attrs(payload.get(tlvs_at..).unwrap_or(&[])) {
            match ty {
                NLMSGERR_ATTR_MSG => {
                    ack.message = Some(String::from_utf8_lossy(strz(value)).into_owned())
                }
                NLMSGERR_ATTR_OFFS => ack.offset = u32_at(value, 0),
                _ => {}
            }
        }
    }
    Some(ack)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nlattr(ty: u16, payload: &[u8]) -> Vec<u8> {
        let mut out = ((4 + payload.len()) as u16).to_ne_bytes().to_vec();
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    fn message(ty: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut out = ((HEADER_LEN + payload.len()) as u32).to_ne_bytes().to_vec();
        out.extend_from_slice(&ty.to_ne_bytes());
        out.extend_from_slice(&flags.to_ne_bytes());
        out.extend_from_slice(&seq.to_ne_bytes());
        out.extend_from_slice(&0u32.to_ne_bytes());
        out.extend_from_slice(payload);
        out.resize(align4(out.len()), 0);
        out
    }

    #[test]
    fn a_capped_error_ack_yields_errno_message_and_offset() {
        let mut payload = (-17i32).to_ne_bytes().to_vec();
        // The original header: 60 bytes long, seq 7.
        payload.extend_from_slice(&message(0x0a0c, 0, 7, &[0; 44])[..HEADER_LEN]);
        payload.extend(nlattr(NLMSGERR_ATTR_MSG, b"exists\0"));
        payload.extend(nlattr(NLMSGERR_ATTR_OFFS, &40u32.to_ne_bytes()));
        let datagram = message(NLMSG_ERROR, NLM_F_CAPPED | NLM_F_ACK_TLVS, 7, &payload);
        let (header, body) = messages(&datagram).next().unwrap();
        let ack = ack(header, body).unwrap();
        assert_eq!(
            ack,
            Ack {
                seq: 7,
                errno: 17,
                message: Some("exists".into()),
                offset: Some(40)
            }
        );
    }

    #[test]
    fn truncated_input_ends_iteration_instead_of_panicking() {
        let datagram = message(NLMSG_DONE, 0, 1, &[1, 2, 3]);
        for cut in 0..datagram.len() {
            let _ = messages(&datagram[..cut]).count();
            let _ = attrs(&datagram[..cut]).count();
        }
        assert_eq!(messages(&datagram).count(), 1);
    }
}
