//! The libmnl functions supervisor calls itself; mnl.c defines them (and the
//! rest that libnftnl calls). Their meaning is libmnl's.

#![no_std]

use core::ffi::{c_char, c_int, c_uint, c_void};

pub use libc::{nlattr, nlmsghdr};

/// `mnl_attr_cb_t`.
pub type AttrCallback = unsafe extern "C" fn(attr: *const nlattr, data: *mut c_void) -> c_int;
/// `mnl_cb_t`.
pub type MsgCallback = unsafe extern "C" fn(nlh: *const nlmsghdr, data: *mut c_void) -> c_int;

/// `MNL_CB_ERROR`, `MNL_CB_STOP`, `MNL_CB_OK`.
pub const MNL_CB_ERROR: c_int = -1;
pub const MNL_CB_STOP: c_int = 0;
pub const MNL_CB_OK: c_int = 1;
/// `MNL_TYPE_U32` and `MNL_TYPE_NUL_STRING` of `enum mnl_attr_data_type`.
pub const MNL_TYPE_U32: c_uint = 3;
pub const MNL_TYPE_NUL_STRING: c_uint = 10;

/// An opaque `struct mnl_nlmsg_batch`.
#[repr(C)]
pub struct mnl_nlmsg_batch {
    _private: [u8; 0],
}

unsafe extern "C" {
    pub fn mnl_nlmsg_put_header(buf: *mut c_void) -> *mut nlmsghdr;
    pub fn mnl_attr_put(nlh: *mut nlmsghdr, ty: u16, len: usize, data: *const c_void);
    pub fn mnl_attr_put_u32(nlh: *mut nlmsghdr, ty: u16, data: u32);
    pub fn mnl_attr_put_strz(nlh: *mut nlmsghdr, ty: u16, data: *const c_char);
    pub fn mnl_attr_nest_start(nlh: *mut nlmsghdr, ty: u16) -> *mut nlattr;
    pub fn mnl_attr_nest_end(nlh: *mut nlmsghdr, start: *mut nlattr);
    pub fn mnl_attr_nest_cancel(nlh: *mut nlmsghdr, start: *mut nlattr);
    pub fn mnl_attr_parse(
        nlh: *const nlmsghdr,
        offset: c_uint,
        cb: AttrCallback,
        data: *mut c_void,
    ) -> c_int;
    pub fn mnl_attr_parse_nested(attr: *const nlattr, cb: AttrCallback, data: *mut c_void)
    -> c_int;
    pub fn mnl_attr_validate(attr: *const nlattr, ty: c_uint) -> c_int;
    pub fn mnl_attr_type_valid(attr: *const nlattr, maxtype: u16) -> c_int;
    pub fn mnl_attr_get_type(attr: *const nlattr) -> u16;
    pub fn mnl_attr_get_u32(attr: *const nlattr) -> u32;
    pub fn mnl_nlmsg_batch_start(buf: *mut c_void, limit: usize) -> *mut mnl_nlmsg_batch;
    pub fn mnl_nlmsg_batch_next(b: *mut mnl_nlmsg_batch) -> bool;
    pub fn mnl_nlmsg_batch_stop(b: *mut mnl_nlmsg_batch);
    pub fn mnl_nlmsg_batch_size(b: *mut mnl_nlmsg_batch) -> usize;
    pub fn mnl_nlmsg_batch_reset(b: *mut mnl_nlmsg_batch);
    pub fn mnl_nlmsg_batch_current(b: *mut mnl_nlmsg_batch) -> *mut c_void;
    pub fn mnl_nlmsg_batch_is_empty(b: *mut mnl_nlmsg_batch) -> bool;
    pub fn mnl_cb_run(
        buf: *const c_void,
        len: usize,
        seq: c_uint,
        portid: c_uint,
        cb: Option<MsgCallback>,
        data: *mut c_void,
    ) -> c_int;
}
