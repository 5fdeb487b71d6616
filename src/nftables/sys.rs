//! The one place this module calls libnftnl and libmnl: owned handles over
//! nftnl objects, and a netlink message under construction. Everything above
//! this file is safe code.
//!
//! libnftnl copies every value it is given (strings, byte strings, numbers), so
//! nothing here lends Rust memory to C beyond the duration of a call.

use std::ffi::{CStr, c_char, c_void};
use std::ptr::NonNull;

use nftnl::nftnl_sys as sys;

use super::object::Udata;

/// Aborts on allocation failure, as std does: the allocations are tiny, so
/// failing them means the process cannot go on anyway.
fn non_null<T>(ptr: *mut T) -> NonNull<T> {
    NonNull::new(ptr).unwrap_or_else(|| std::process::abort())
}

/// A setter result below zero only means libnftnl failed to allocate its copy
/// (every length it could refuse is checked before the call).
fn check(ret: i32) {
    if ret < 0 {
        std::process::abort();
    }
}

/// The kernel's longest name, NUL included (`NFT_NAME_MAXLEN`: tables,
/// chains, sets, objects), and the longest string attribute we send.
pub const NAME_MAX: usize = 256;
/// The kernel's largest user data (`NFT_USERDATA_MAXLEN`).
pub const USERDATA_MAX: usize = 256;
/// The largest register value (`NFT_DATA_VALUE_MAXLEN`): keys, data,
/// comparison operands. libnftnl copies them into a buffer of this size
/// without checking, so longer ones must never reach it.
pub const VALUE_MAX: usize = 64;
/// Fields of a concatenated set key libnftnl can take: it keeps 16 one-byte
/// lengths and finds their count by the first zero, so the 16th must stay
/// zero.
pub const CONCAT_FIELDS_MAX: usize = 15;

fn align4(n: usize) -> usize {
    n.div_ceil(4) * 4
}

/// What libnftnl may write for one attribute of `len` bytes: its header,
/// the padded payload, and a nest around it (data values sit in one).
fn attr_bound(len: usize) -> usize {
    12 + align4(len)
}

/// What refusing a value says: which attribute, how long, the limit.
fn too_long(what: &str, len: usize, max: usize) -> String {
    format!("{what} is {len} bytes, more than the kernel's limit of {max}")
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $raw:ty, $alloc:path, $free:path, $set:path, $build:path) => {
        $(#[$doc])*
        ///
        /// Every setter checks the value's length against what libnftnl
        /// and the kernel take: a value too long is not handed to libnftnl
        /// at all, and [`build`](Self::build) then writes nothing and
        /// fails the message. The handle also adds up an upper bound of
        /// what `build` writes, checked against the room left.
        pub(super) struct $name {
            ptr: NonNull<$raw>,
            bound: usize,
            refused: Option<String>,
        }

        impl $name {
            pub(super) fn new() -> Self {
                // SAFETY: the allocator takes no arguments; a null result is handled.
                let ptr = non_null(unsafe { $alloc() });
                // The object's own nests and attributes libnftnl adds.
                Self { ptr, bound: 32, refused: None }
            }

            /// Sets attribute `attr` to a copy of `data`, at most `max`
            /// bytes (libnftnl reads fixed-size attributes by their size,
            /// so callers pass exactly that many bytes).
            fn set_checked(&mut self, attr: u32, data: &[u8], max: usize, what: &str) {
                if data.len() > max {
                    self.refused.get_or_insert_with(|| too_long(what, data.len(), max));
                    return;
                }
                self.bound += attr_bound(data.len());
                // `max` is at most a few hundred bytes, so this never saturates.
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                // SAFETY: the object is live and ours; libnftnl reads `len`
                // bytes from `data` and copies them before returning, into
                // storage of at least `max` bytes (checked above).
                check(unsafe { $set(self.ptr.as_ptr(), attr as u16, data.as_ptr().cast(), len) } as i32);
            }

            pub(super) fn set_u32(&mut self, attr: u32, value: u32) {
                self.set_checked(attr, &value.to_ne_bytes(), 4, "a number");
            }

            // Not every object has 64-bit attributes.
            #[allow(dead_code)]
            pub(super) fn set_u64(&mut self, attr: u32, value: u64) {
                self.set_checked(attr, &value.to_ne_bytes(), 8, "a number");
            }

            /// A name or other string (NUL included, at most [`NAME_MAX`]).
            // Not every object has string attributes besides its names.
            #[allow(dead_code)]
            pub(super) fn set_str(&mut self, attr: u32, value: &CStr, what: &str) {
                self.set_checked(attr, value.to_bytes_with_nul(), NAME_MAX, what);
            }

            /// A key or data value (at most [`VALUE_MAX`] bytes).
            #[allow(dead_code)]
            pub(super) fn set_value(&mut self, attr: u32, value: &[u8], what: &str) {
                self.set_checked(attr, value, VALUE_MAX, what);
            }

            /// User data (at most [`USERDATA_MAX`] bytes).
            pub(super) fn set_udata(&mut self, attr: u32, value: &Udata) {
                match value.oversized() {
                    Some(len) => self.refuse(too_long("a user data entry", len, 255)),
                    None => self.set_checked(attr, value.as_bytes(), USERDATA_MAX, "user data"),
                }
            }

            /// Makes the object refuse to build, for a value its caller
            /// found invalid.
            pub(super) fn refuse(&mut self, reason: String) {
                self.refused.get_or_insert(reason);
            }

            /// Appends the object's attributes to the message, or fails the
            /// message without writing when a value was refused or the
            /// attributes might not fit.
            pub(super) fn build(&self, msg: &mut Message<'_>) {
                if let Some(reason) = &self.refused {
                    msg.fail(reason.clone());
                    return;
                }
                if !msg.has_room(self.bound) {
                    msg.fail(format!(
                        "the message would grow past {} bytes",
                        msg.capacity
                    ));
                    return;
                }
                // SAFETY: the header is valid and the buffer has room for
                // `bound` more bytes (checked above), an upper bound of what
                // libnftnl writes for the attributes set on this object.
                unsafe { $build(msg.nlh.as_ptr(), self.ptr.as_ptr()) };
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own the object and free it exactly once.
                unsafe { $free(self.ptr.as_ptr()) };
            }
        }
    };
}

handle!(
    /// An `nftnl_table`.
    NlTable,
    sys::nftnl_table,
    sys::nftnl_table_alloc,
    sys::nftnl_table_free,
    sys::nftnl_table_set_data,
    sys::nftnl_table_nlmsg_build_payload
);
handle!(
    /// An `nftnl_chain`.
    NlChain,
    sys::nftnl_chain,
    sys::nftnl_chain_alloc,
    sys::nftnl_chain_free,
    sys::nftnl_chain_set_data,
    sys::nftnl_chain_nlmsg_build_payload
);
handle!(
    /// An `nftnl_rule`.
    NlRule,
    sys::nftnl_rule,
    sys::nftnl_rule_alloc,
    sys::nftnl_rule_free,
    sys::nftnl_rule_set_data,
    sys::nftnl_rule_nlmsg_build_payload
);
handle!(
    /// An `nftnl_set`.
    NlSet,
    sys::nftnl_set,
    sys::nftnl_set_alloc,
    sys::nftnl_set_free,
    sys::nftnl_set_set_data,
    sys::nftnl_set_nlmsg_build_payload
);
handle!(
    /// An `nftnl_set_elem`, built into a message on its own (inside a nest the
    /// caller opens), the way nft does, so each element's offset is known.
    NlElem,
    sys::nftnl_set_elem,
    sys::nftnl_set_elem_alloc,
    sys::nftnl_set_elem_free,
    sys::nftnl_set_elem_set,
    sys::nftnl_set_elem_nlmsg_build_payload
);

impl NlSet {
    /// `NFTNL_SET_DESC_CONCAT`: one length byte per field of a
    /// concatenated key, each 1 to 255 bytes, at most
    /// [`CONCAT_FIELDS_MAX`] fields (libnftnl copies them into 16 bytes and
    /// counts up to the first zero).
    pub(super) fn set_field_lens(&mut self, attr: u32, lens: &[u32]) {
        if lens.len() > CONCAT_FIELDS_MAX {
            self.refused.get_or_insert_with(|| {
                format!(
                    "a concatenation of {} fields is more than the {CONCAT_FIELDS_MAX} this encoder takes",
                    lens.len()
                )
            });
            return;
        }
        let mut bytes = Vec::with_capacity(lens.len());
        for &len in lens {
            match u8::try_from(len) {
                Ok(byte) if byte > 0 => bytes.push(byte),
                _ => {
                    self.refused.get_or_insert_with(|| {
                        format!("a concatenation field of {len} bytes (expected 1 to 255)")
                    });
                    return;
                }
            }
        }
        // Each field is written as a nest holding a u32.
        self.bound += 12 * bytes.len();
        self.set_checked(
            attr,
            &bytes,
            CONCAT_FIELDS_MAX,
            "concatenation field lengths",
        );
    }
}

impl NlRule {
    /// Appends an expression; the rule takes ownership of it. An expression
    /// that refused a value makes the rule refuse to build.
    pub(super) fn add_expr(&mut self, mut expr: NlExpr) {
        // Taken out first: `forget` below must leave nothing of ours behind
        // (the fuzzer found this reason leaking).
        if let Some(reason) = expr.refused.take() {
            self.refused.get_or_insert(reason);
        }
        // The list element and name nests around the expression's attributes.
        self.bound += expr.bound + 32;
        // libnftnl closes the expression list as one nest: past 16 bits its
        // length would wrap.
        if self.bound > u16::MAX as usize {
            self.refused.get_or_insert_with(|| {
                format!("the rule's expressions take more than {} bytes", u16::MAX)
            });
        }
        let raw = expr.ptr.as_ptr();
        std::mem::forget(expr);
        // SAFETY: both objects are live; the rule now owns `raw` and frees it
        // with itself, and `forget` makes sure we never free it too.
        unsafe { sys::nftnl_rule_add_expr(self.ptr.as_ptr(), raw) };
    }
}

/// An `nftnl_expr` that is not yet part of a rule, with the same checks as
/// the object handles above.
pub(super) struct NlExpr {
    ptr: NonNull<sys::nftnl_expr>,
    bound: usize,
    refused: Option<String>,
}

impl NlExpr {
    pub(super) fn new(name: &CStr) -> Self {
        // SAFETY: `name` is a valid C string that libnftnl looks up in its
        // table of expression types; unknown names give null, handled below.
        let ptr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
        NlExpr {
            ptr: non_null(ptr),
            bound: 0,
            refused: None,
        }
    }

    fn set_checked(&mut self, attr: u32, data: &[u8], max: usize, what: &str) {
        if data.len() > max {
            self.refused
                .get_or_insert_with(|| too_long(what, data.len(), max));
            return;
        }
        self.bound += attr_bound(data.len());
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // SAFETY: the expression is live and ours; libnftnl copies `len`
        // bytes from `data` before returning, into storage of at least `max`
        // bytes (checked above).
        check(unsafe {
            sys::nftnl_expr_set(self.ptr.as_ptr(), attr as u16, data.as_ptr().cast(), len)
        });
    }

    pub(super) fn set_u32(&mut self, attr: u32, value: u32) {
        self.set_checked(attr, &value.to_ne_bytes(), 4, "a number");
    }

    pub(super) fn set_u16(&mut self, attr: u32, value: u16) {
        self.set_checked(attr, &value.to_ne_bytes(), 2, "a number");
    }

    pub(super) fn set_u8(&mut self, attr: u32, value: u8) {
        self.set_checked(attr, &[value], 1, "a number");
    }

    pub(super) fn set_u64(&mut self, attr: u32, value: u64) {
        self.set_checked(attr, &value.to_ne_bytes(), 8, "a number");
    }

    /// A set or chain name, or a log prefix (at most [`NAME_MAX`] bytes).
    pub(super) fn set_str(&mut self, attr: u32, value: &CStr, what: &str) {
        self.set_checked(attr, value.to_bytes_with_nul(), NAME_MAX, what);
    }

    /// A register value (at most [`VALUE_MAX`] bytes).
    pub(super) fn set_value(&mut self, attr: u32, value: &[u8], what: &str) {
        self.set_checked(attr, value, VALUE_MAX, what);
    }
}

impl Drop for NlExpr {
    fn drop(&mut self) {
        // SAFETY: an expression not handed to a rule is still ours to free.
        unsafe { sys::nftnl_expr_free(self.ptr.as_ptr()) };
    }
}

/// The largest message libnftnl may write: one 16-bit attribute's worth of
/// payload and a page of headers, as nft and the nftnl crate assume.
pub(super) fn max_message_size() -> usize {
    nftnl::nft_nlmsg_maxsize() as usize
}

/// A netlink message being written into a buffer of `capacity` bytes.
///
/// Every write checks the room left first and the 16-bit attribute length
/// limits; a write that does not fit writes nothing and fails the message
/// ([`Message::failure`]), which its batch then refuses to send.
pub(super) struct Message<'buf> {
    nlh: NonNull<libc::nlmsghdr>,
    capacity: usize,
    failure: Option<String>,
    _buf: std::marker::PhantomData<&'buf mut [u8]>,
}

/// An open nest: the offset of its header from the message start.
pub(super) struct Nest(usize);

impl Message<'_> {
    /// Writes a netfilter message header into `buf`.
    ///
    /// # Safety
    /// `buf` must be valid for writes of `capacity` bytes (at least 64) and
    /// suitably aligned for an `nlmsghdr` for the lifetime of the message.
    pub(super) unsafe fn start(
        buf: *mut c_void,
        capacity: usize,
        ty: u16,
        family: u16,
        flags: u16,
        seq: u32,
    ) -> Self {
        // SAFETY: per this function's contract; the header and the
        // netfilter header take 20 bytes.
        let nlh =
            unsafe { sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), ty, family, flags, seq) };
        Message {
            nlh: non_null(nlh),
            capacity,
            failure: None,
            _buf: std::marker::PhantomData,
        }
    }

    /// The message's length so far.
    pub(super) fn len(&self) -> usize {
        // SAFETY: the header is valid for the message's lifetime.
        unsafe { (*self.nlh.as_ptr()).nlmsg_len as usize }
    }

    /// Whether `n` more bytes fit the buffer.
    fn has_room(&self, n: usize) -> bool {
        self.failure.is_none() && self.len().saturating_add(n) <= self.capacity
    }

    /// Marks the message as not written as asked; the first reason stays.
    pub(super) fn fail(&mut self, reason: String) {
        self.failure.get_or_insert(reason);
    }

    /// Why the message could not be written whole, if it could not.
    pub(super) fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    /// Cuts the message back to `len` bytes (dropping what was written after).
    pub(super) fn truncate(&mut self, len: usize) {
        if len < self.len() {
            // SAFETY: as in `len`; shrinking never exceeds the buffer.
            unsafe { (*self.nlh.as_ptr()).nlmsg_len = len as u32 };
        }
    }

    /// A name attribute (table, chain, set): at most [`NAME_MAX`] bytes
    /// with its NUL, as the kernel takes them.
    pub(super) fn put_strz(&mut self, attr: u16, value: &CStr) {
        let len = value.to_bytes_with_nul().len();
        if len > NAME_MAX {
            self.fail(too_long("a name", len - 1, NAME_MAX - 1));
            return;
        }
        if !self.has_room(4 + align4(len)) {
            self.fail(format!(
                "the message would grow past {} bytes",
                self.capacity
            ));
            return;
        }
        // SAFETY: the value is a C string of `len` bytes, and the buffer has
        // room for its attribute (checked above).
        unsafe { mnl_sys::mnl_attr_put_strz(self.nlh.as_ptr(), attr, value.as_ptr()) };
    }

    /// Puts a u32 attribute in network byte order, as netfilter wants.
    pub(super) fn put_be32(&mut self, attr: u16, value: u32) {
        if !self.has_room(8) {
            self.fail(format!(
                "the message would grow past {} bytes",
                self.capacity
            ));
            return;
        }
        // SAFETY: the buffer has room for the 8-byte attribute (checked above).
        unsafe { mnl_sys::mnl_attr_put_u32(self.nlh.as_ptr(), attr, value.to_be()) };
    }

    pub(super) fn nest_start(&mut self, attr: u16) -> Nest {
        let offset = self.len();
        if !self.has_room(4) {
            self.fail(format!(
                "the message would grow past {} bytes",
                self.capacity
            ));
            return Nest(offset);
        }
        // SAFETY: the buffer has room for the 4-byte nest header (checked above).
        unsafe { mnl_sys::mnl_attr_nest_start(self.nlh.as_ptr(), attr) };
        Nest(offset)
    }

    /// Closes a nest; one that grew past a 16-bit length fails the message
    /// instead of wrapping its length.
    pub(super) fn nest_end(&mut self, nest: Nest) {
        if self.failure.is_some() {
            return;
        }
        let len = self.len();
        if nest.0 + 4 > len {
            // Not a nest this message wrote (or it was truncated away).
            self.fail("a nest closed that was not open".to_string());
            return;
        }
        if len - nest.0 > u16::MAX as usize {
            self.fail(too_long(
                "a nested attribute",
                len - nest.0,
                u16::MAX as usize,
            ));
            return;
        }
        // SAFETY: `nest.0 + 4 <= len`, so the nest header lies inside the
        // message written so far; mnl only writes its 16-bit length.
        unsafe {
            let start = self
                .nlh
                .as_ptr()
                .cast::<u8>()
                .add(nest.0)
                .cast::<libc::nlattr>();
            mnl_sys::mnl_attr_nest_end(self.nlh.as_ptr(), start.cast());
        }
    }
}

/// One message for `nftnl::Batch`: a header, then whatever `body` writes.
pub(super) struct Writer<F: Fn(&mut Message<'_>)> {
    pub ty: u16,
    pub family: u16,
    pub flags: u16,
    /// Receives the sequence number the batch gave the message.
    pub seq: std::cell::Cell<u32>,
    /// Receives the message's failure, if it could not be written whole.
    pub failure: std::cell::RefCell<Option<String>>,
    pub body: F,
}

// SAFETY: `write` only writes through `Message`, which checks the room left
// in a buffer of `nft_nlmsg_maxsize()` bytes before every write, and the
// batch hands us a buffer of at least that size.
unsafe impl<F: Fn(&mut Message<'_>)> nftnl::NlMsg for Writer<F> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _: nftnl::MsgType) {
        self.seq.set(seq);
        // SAFETY: nftnl's batch passes a buffer with room for
        // `nft_nlmsg_maxsize()` bytes, aligned for netlink headers.
        let mut msg = unsafe {
            Message::start(
                buf,
                max_message_size(),
                self.ty,
                self.family,
                self.flags,
                seq,
            )
        };
        (self.body)(&mut msg);
        if let Some(reason) = msg.failure() {
            *self.failure.borrow_mut() = Some(reason.to_string());
        }
    }
}

/// Builds a single request (not part of a batch) into an aligned buffer.
pub(super) fn request(
    ty: u16,
    family: u16,
    flags: u16,
    seq: u32,
    body: impl Fn(&mut Message<'_>),
) -> Result<Vec<u8>, String> {
    // u32 elements make the buffer aligned for `nlmsghdr`. Room, not
    // zeroes: our libmnl (mnl-sys/mnl.c, which zeroes headers and
    // attribute padding, as Debian's libmnl 1.0.4 does not) and libnftnl
    // write every byte of the message up to its length, and nothing past
    // it is read.
    // Zeroed, the 68 KB for a request of a hundred bytes were 17 freshly
    // faulted pages and a memset on every CNI ADD (its version lookup).
    let capacity = max_message_size();
    let mut buf = Vec::<u32>::with_capacity(capacity.div_ceil(4));
    let start = buf.as_mut_ptr().cast::<u8>();
    // SAFETY: the buffer is aligned and has room for `capacity` bytes, and
    // outlives the message, which is dropped before we read the buffer.
    let len = unsafe {
        let mut msg = Message::start(start.cast(), capacity, ty, family, flags, seq);
        body(&mut msg);
        if let Some(reason) = msg.failure() {
            return Err(reason.to_string());
        }
        msg.len()
    };
    // SAFETY: the message's first `len` bytes (at most `capacity`: every
    // write checked its room) were written through libmnl, as said above.
    Ok(unsafe { std::slice::from_raw_parts(start, len) }.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_refuses_writes_past_its_buffer_instead_of_making_them() {
        let name = std::ffi::CString::new(vec![b'n'; 255]).unwrap();
        // 300 names of 260 bytes: 78,000 bytes, past the 69,631-byte buffer.
        let err = request(0, 2, 0, 1, |m| {
            for _ in 0..300 {
                m.put_strz(1, &name);
            }
        })
        .unwrap_err();
        assert!(err.contains("grow past"), "{err}");
    }

    #[test]
    fn a_nest_longer_than_16_bits_fails_instead_of_wrapping() {
        let name = std::ffi::CString::new(vec![b'n'; 255]).unwrap();
        let err = request(0, 2, 0, 1, |m| {
            let nest = m.nest_start(1);
            // 260 names of 260 bytes: 67,600 bytes in one nest.
            for _ in 0..260 {
                m.put_strz(1, &name);
            }
            m.nest_end(nest);
        })
        .unwrap_err();
        assert!(err.contains("nested attribute"), "{err}");
    }

    /// The rule's own guard, behind `Batch::add_rule`'s estimate: an
    /// expression list past 16 bits is refused, not wrapped by libnftnl.
    #[test]
    fn a_rule_whose_expressions_outgrow_16_bits_refuses_to_build() {
        // About 67,000 bytes of bound: inside the buffer, past 16 bits.
        let mut rule = NlRule::new();
        for _ in 0..620 {
            let mut e = NlExpr::new(c"cmp");
            e.set_value(1, &[0; 64], "a value");
            rule.add_expr(e);
        }
        let err = request(0, 2, 0, 1, |m| rule.build(m)).unwrap_err();
        assert!(err.contains("expressions take more than 65535"), "{err}");
    }

    #[test]
    fn a_name_past_the_kernels_limit_is_not_written() {
        let long = std::ffi::CString::new(vec![b'n'; 256]).unwrap();
        assert!(request(0, 2, 0, 1, |m| m.put_strz(1, &long)).is_err());
        let ok = std::ffi::CString::new(vec![b'n'; 255]).unwrap();
        let msg = request(0, 2, 0, 1, |m| m.put_strz(1, &ok)).unwrap();
        assert_eq!(msg.len(), 20 + 4 + 256);
    }
}
