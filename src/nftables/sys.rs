//! The one place this module calls libnftnl and libmnl: owned handles over
//! nftnl objects, and a netlink message under construction. Everything above
//! this file is safe code.
//!
//! libnftnl copies every value it is given (strings, byte strings, numbers), so
//! nothing here lends Rust memory to C beyond the duration of a call.

use std::ffi::{CStr, c_char, c_void};
use std::ptr::NonNull;

use nftnl::nftnl_sys as sys;

/// Aborts on allocation failure, as std does: the allocations are tiny, so
/// failing them means the process cannot go on anyway.
fn non_null<T>(ptr: *mut T) -> NonNull<T> {
    NonNull::new(ptr).unwrap_or_else(|| std::process::abort())
}

/// A setter result below zero only means libnftnl failed to allocate its copy.
fn check(ret: i32) {
    if ret < 0 {
        std::process::abort();
    }
}

macro_rules! handle {
    ($(#[$doc:meta])* $name:ident, $raw:ty, $alloc:path, $free:path, $set:path, $build:path) => {
        $(#[$doc])*
        pub(super) struct $name(NonNull<$raw>);

        impl $name {
            pub(super) fn new() -> Self {
                // SAFETY: the allocator takes no arguments; a null result is handled.
                Self(non_null(unsafe { $alloc() }))
            }

            /// Sets attribute `attr` to a copy of `data`. Numbers are passed in
            /// native byte order as libnftnl's `_set_u32` does; strings with
            /// their terminating NUL.
            pub(super) fn set(&mut self, attr: u32, data: &[u8]) {
                let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
                // SAFETY: the object is live and ours; libnftnl reads `len`
                // bytes from `data` and copies them before returning.
                check(unsafe { $set(self.0.as_ptr(), attr as u16, data.as_ptr().cast(), len) } as i32);
            }

            pub(super) fn set_u32(&mut self, attr: u32, value: u32) {
                self.set(attr, &value.to_ne_bytes());
            }

            // Not every object has string attributes besides its names.
            #[allow(dead_code)]
            pub(super) fn set_str(&mut self, attr: u32, value: &CStr) {
                self.set(attr, value.to_bytes_with_nul());
            }

            /// Appends the object's attributes to the message.
            pub(super) fn build(&self, msg: &mut Message<'_>) {
                // SAFETY: the header is valid and its buffer has room for the
                // largest message (guaranteed by `Message`'s constructor).
                unsafe { $build(msg.nlh.as_ptr(), self.0.as_ptr()) };
            }
        }

        impl Drop for $name {
            fn drop(&mut self) {
                // SAFETY: we own the object and free it exactly once.
                unsafe { $free(self.0.as_ptr()) };
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

impl NlRule {
    /// Appends an expression; the rule takes ownership of it.
    pub(super) fn add_expr(&mut self, expr: NlExpr) {
        let raw = expr.0.as_ptr();
        std::mem::forget(expr);
        // SAFETY: both objects are live; the rule now owns `raw` and frees it
        // with itself, and `forget` makes sure we never free it too.
        unsafe { sys::nftnl_rule_add_expr(self.0.as_ptr(), raw) };
    }
}

/// An `nftnl_expr` that is not yet part of a rule.
pub(super) struct NlExpr(NonNull<sys::nftnl_expr>);

impl NlExpr {
    pub(super) fn new(name: &CStr) -> Self {
        // SAFETY: `name` is a valid C string that libnftnl looks up in its
        // table of expression types; unknown names give null, handled below.
        let ptr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
        NlExpr(non_null(ptr))
    }

    pub(super) fn set(&mut self, attr: u32, data: &[u8]) {
        let len = u32::try_from(data.len()).unwrap_or(u32::MAX);
        // SAFETY: the expression is live and ours; libnftnl copies `len`
        // bytes from `data` before returning.
        check(unsafe {
            sys::nftnl_expr_set(self.0.as_ptr(), attr as u16, data.as_ptr().cast(), len)
        });
    }

    pub(super) fn set_u32(&mut self, attr: u32, value: u32) {
        self.set(attr, &value.to_ne_bytes());
    }

    pub(super) fn set_u16(&mut self, attr: u32, value: u16) {
        self.set(attr, &value.to_ne_bytes());
    }

    pub(super) fn set_u8(&mut self, attr: u32, value: u8) {
        self.set(attr, &[value]);
    }

    pub(super) fn set_u64(&mut self, attr: u32, value: u64) {
        self.set(attr, &value.to_ne_bytes());
    }

    pub(super) fn set_str(&mut self, attr: u32, value: &CStr) {
        self.set(attr, value.to_bytes_with_nul());
    }
}

impl Drop for NlExpr {
    fn drop(&mut self) {
        // SAFETY: an expression not handed to a rule is still ours to free.
        unsafe { sys::nftnl_expr_free(self.0.as_ptr()) };
    }
}

/// The largest message libnftnl may write: one 16-bit attribute's worth of
/// payload and a page of headers, as nft and the nftnl crate assume.
pub(super) fn max_message_size() -> usize {
    nftnl::nft_nlmsg_maxsize() as usize
}

/// A netlink message being written into a buffer that has room for
/// `max_message_size()` bytes.
pub(super) struct Message<'buf> {
    nlh: NonNull<libc::nlmsghdr>,
    _buf: std::marker::PhantomData<&'buf mut [u8]>,
}

/// An open nest: the offset of its header from the message start.
pub(super) struct Nest(usize);

impl Message<'_> {
    /// Writes a netfilter message header into `buf`.
    ///
    /// # Safety
    /// `buf` must be valid for writes of `max_message_size()` bytes and
    /// suitably aligned for an `nlmsghdr` for the lifetime of the message.
    pub(super) unsafe fn start(
        buf: *mut c_void,
        ty: u16,
        family: u16,
        flags: u16,
        seq: u32,
    ) -> Self {
        // SAFETY: per this function's contract.
        let nlh =
            unsafe { sys::nftnl_nlmsg_build_hdr(buf.cast::<c_char>(), ty, family, flags, seq) };
        Message {
            nlh: non_null(nlh),
            _buf: std::marker::PhantomData,
        }
    }

    /// The message's length so far.
    pub(super) fn len(&self) -> usize {
        // SAFETY: the header is valid for the message's lifetime.
        unsafe { (*self.nlh.as_ptr()).nlmsg_len as usize }
    }

    /// Cuts the message back to `len` bytes (dropping what was written after).
    pub(super) fn truncate(&mut self, len: usize) {
        if len < self.len() {
            // SAFETY: as in `len`; shrinking never exceeds the buffer.
            unsafe { (*self.nlh.as_ptr()).nlmsg_len = len as u32 };
        }
    }

    pub(super) fn put_strz(&mut self, attr: u16, value: &CStr) {
        // SAFETY: the buffer has room for the largest message and callers put
        // only names here (bounded by the kernel's 256-byte name limit).
        unsafe { mnl::mnl_sys::mnl_attr_put_strz(self.nlh.as_ptr(), attr, value.as_ptr()) };
    }

    /// Puts a u32 attribute in network byte order, as netfilter wants.
    pub(super) fn put_be32(&mut self, attr: u16, value: u32) {
        // SAFETY: as in `put_strz`; four bytes of payload.
        unsafe { mnl::mnl_sys::mnl_attr_put_u32(self.nlh.as_ptr(), attr, value.to_be()) };
    }

    pub(super) fn nest_start(&mut self, attr: u16) -> Nest {
        let offset = self.len();
        // SAFETY: as in `put_strz`; a nest header is four bytes.
        unsafe { mnl::mnl_sys::mnl_attr_nest_start(self.nlh.as_ptr(), attr) };
        Nest(offset)
    }

    pub(super) fn nest_end(&mut self, nest: Nest) {
        // SAFETY: `nest.0` is the offset of a nest header this message wrote
        // and has not truncated away, so the pointer is inside the message.
        unsafe {
            let start = self
                .nlh
                .as_ptr()
                .cast::<u8>()
                .add(nest.0)
                .cast::<libc::nlattr>();
            mnl::mnl_sys::mnl_attr_nest_end(self.nlh.as_ptr(), start.cast());
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
    pub body: F,
}

// SAFETY: `write` only writes through `Message`, whose attributes stay within
// the largest message size: bodies check object sizes before writing (see
// `Batch`), and the batch hands us a buffer of at least that size.
unsafe impl<F: Fn(&mut Message<'_>)> nftnl::NlMsg for Writer<F> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _: nftnl::MsgType) {
        self.seq.set(seq);
        // SAFETY: nftnl's batch passes a buffer with room for
        // `nft_nlmsg_maxsize()` bytes, aligned for netlink headers.
        let mut msg = unsafe { Message::start(buf, self.ty, self.family, self.flags, seq) };
        (self.body)(&mut msg);
    }
}

/// Builds a single request (not part of a batch) into an aligned buffer.
pub(super) fn request(
    ty: u16,
    family: u16,
    flags: u16,
    seq: u32,
    body: impl Fn(&mut Message<'_>),
) -> Vec<u8> {
    // u32 elements make the buffer aligned for `nlmsghdr`.
    let mut buf = vec![0u32; max_message_size().div_ceil(4)];
    // SAFETY: the buffer is aligned, zeroed and `max_message_size()` long,
    // and outlives the message, which is dropped before we read the buffer.
    let len = unsafe {
        let mut msg = Message::start(buf.as_mut_ptr().cast(), ty, family, flags, seq);
        body(&mut msg);
        msg.len()
    };
    buf.iter().flat_map(|w| w.to_ne_bytes()).take(len).collect()
}
