//! mnl-sys/mnl.c, our libmnl: the messages it writes and how it reads
//! replies, byte for byte as libmnl documents them (libnftnl relies on both).

use std::ffi::{c_int, c_void};
use std::ptr;

use mnl_sys::*;

/// A 4-byte aligned buffer, as netlink messages want.
#[repr(C, align(8))]
struct Buf([u8; 256]);

fn buf() -> Box<Buf> {
    Box::new(Buf([0xaa; 256]))
}

fn header(b: &mut Buf) -> *mut nlmsghdr {
    // SAFETY: the buffer has room for a header.
    unsafe { mnl_nlmsg_put_header(b.0.as_mut_ptr().cast()) }
}

fn len(nlh: *const nlmsghdr) -> usize {
    // SAFETY: nlh points at a header these tests wrote.
    unsafe { (*nlh).nlmsg_len as usize }
}

#[test]
fn attributes_are_padded_to_four_bytes_and_counted_in_the_message() {
    let mut b = buf();
    let nlh = header(&mut b);
    assert_eq!(len(nlh), 16);
    // SAFETY: the buffer has room for both attributes.
    unsafe {
        mnl_attr_put_strz(nlh, 1, c"ab".as_ptr());
        mnl_attr_put_u32(nlh, 2, 0x0102_0304);
    }
    assert_eq!(len(nlh), 16 + 8 + 8);
    assert_eq!(&b.0[..4], &32u32.to_ne_bytes());
    // "ab\0": length 4 + 3, one byte of zero padding.
    assert_eq!(&b.0[16..20], &[7, 0, 1, 0]);
    assert_eq!(&b.0[20..24], b"ab\0\0");
    assert_eq!(&b.0[24..28], &[8, 0, 2, 0]);
    assert_eq!(&b.0[28..32], &0x0102_0304u32.to_ne_bytes());
}

#[test]
fn a_nest_spans_the_attributes_put_inside_it_and_is_flagged_nested() {
    let mut b = buf();
    let nlh = header(&mut b);
    // SAFETY: the buffer has room for the nest and what it holds.
    unsafe {
        let nest = mnl_attr_nest_start(nlh, 3);
        mnl_attr_put_u32(nlh, 1, 7);
        mnl_attr_nest_end(nlh, nest);
    }
    assert_eq!(len(nlh), 16 + 4 + 8);
    assert_eq!(&b.0[16..18], &12u16.to_ne_bytes());
    assert_eq!(&b.0[18..20], &(3u16 | 0x8000).to_ne_bytes());
}

#[test]
fn a_cancelled_nest_leaves_the_message_as_it_was() {
    let mut b = buf();
    let nlh = header(&mut b);
    // SAFETY: the buffer has room for the nest and what it holds.
    unsafe {
        let nest = mnl_attr_nest_start(nlh, 3);
        mnl_attr_put_u32(nlh, 1, 7);
        mnl_attr_nest_cancel(nlh, nest);
    }
    assert_eq!(len(nlh), 16);
}

unsafe extern "C" fn collect(attr: *const nlattr, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the Vec `parse` passes; `attr` one mnl found.
    let (seen, ty) = unsafe {
        (
            &mut *data.cast::<Vec<(u16, u32)>>(),
            mnl_attr_get_type(attr),
        )
    };
    // SAFETY: every attribute these tests parse holds a u32.
    seen.push((ty, unsafe { mnl_attr_get_u32(attr) }));
    if ty == 2 { MNL_CB_STOP } else { MNL_CB_OK }
}

fn parse(nlh: *const nlmsghdr) -> (c_int, Vec<(u16, u32)>) {
    let mut seen: Vec<(u16, u32)> = Vec::new();
    // SAFETY: nlh is a whole message; the callback gets `seen`.
    let ret = unsafe { mnl_attr_parse(nlh, 0, collect, ptr::from_mut(&mut seen).cast()) };
    (ret, seen)
}

#[test]
fn parse_visits_each_attribute_in_order_until_a_callback_stops() {
    let mut b = buf();
    let nlh = header(&mut b);
    // SAFETY: the buffer has room for three attributes.
    unsafe {
        mnl_attr_put_u32(nlh, 1, 10);
        mnl_attr_put_u32(nlh, 3, 30);
        mnl_attr_put_u32(nlh, 4, 40);
    }
    assert_eq!(parse(nlh), (MNL_CB_OK, vec![(1, 10), (3, 30), (4, 40)]));

    let mut b = buf();
    let nlh = header(&mut b);
    // SAFETY: as above.
    unsafe {
        mnl_attr_put_u32(nlh, 1, 10);
        mnl_attr_put_u32(nlh, 2, 20);
        mnl_attr_put_u32(nlh, 4, 40);
    }
    assert_eq!(parse(nlh), (MNL_CB_STOP, vec![(1, 10), (2, 20)]));
}

#[test]
fn parse_stops_at_an_attribute_that_runs_past_the_message() {
    let mut b = buf();
    let nlh = header(&mut b);
    // SAFETY: the buffer has room for two attributes.
    unsafe {
        mnl_attr_put_u32(nlh, 1, 10);
        mnl_attr_put_u32(nlh, 3, 30);
    }
    // The second attribute claims 12 bytes where 8 are left.
    b.0[24] = 12;
    assert_eq!(parse(nlh), (MNL_CB_OK, vec![(1, 10)]));
}

#[test]
fn parse_nested_reads_the_attributes_inside_a_nest() {
    let mut b = buf();
    let nlh = header(&mut b);
    let mut seen: Vec<(u16, u32)> = Vec::new();
    // SAFETY: the buffer has room for the nest; the callback gets `seen`.
    let ret = unsafe {
        let nest = mnl_attr_nest_start(nlh, 9);
        mnl_attr_put_u32(nlh, 1, 10);
        mnl_attr_put_u32(nlh, 3, 30);
        mnl_attr_nest_end(nlh, nest);
        mnl_attr_parse_nested(nest, collect, ptr::from_mut(&mut seen).cast())
    };
    assert_eq!((ret, seen), (MNL_CB_OK, vec![(1, 10), (3, 30)]));
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

#[test]
fn validate_refuses_a_u32_of_the_wrong_size_a_string_without_its_nul_and_a_type_past_max() {
    let mut b = buf();
    let nlh = header(&mut b);
    let payload = [1u8, 2, 3, 4, 5, 6];
    // SAFETY: the buffer has room for every attribute put.
    unsafe {
        let four = b.0.as_ptr().add(16).cast::<nlattr>();
        mnl_attr_put_u32(nlh, 1, 7);
        assert_eq!(mnl_attr_validate(four, MNL_TYPE_U32), 0);
        assert_eq!(mnl_attr_type_valid(four, 1), 1);
        assert_eq!(mnl_attr_type_valid(four, 0), -1);
        assert_eq!(errno(), libc::EOPNOTSUPP);

        let six = b.0.as_ptr().add(len(nlh)).cast::<nlattr>();
        mnl_attr_put(nlh, 2, payload.len(), payload.as_ptr().cast());
        assert_eq!(mnl_attr_validate(six, MNL_TYPE_U32), -1);
        assert_eq!(errno(), libc::ERANGE);
        assert_eq!(mnl_attr_validate(six, MNL_TYPE_NUL_STRING), -1);
        assert_eq!(errno(), libc::EINVAL);

        let string = b.0.as_ptr().add(len(nlh)).cast::<nlattr>();
        mnl_attr_put_strz(nlh, 3, c"x".as_ptr());
        assert_eq!(mnl_attr_validate(string, MNL_TYPE_NUL_STRING), 0);
    }
}

/// Writes an empty message of `len` bytes at the batch's current place.
fn message(batch: *mut mnl_nlmsg_batch, len: u32) -> *mut c_void {
    // SAFETY: the batch's buffer has room for a message past its limit.
    unsafe {
        let cur = mnl_nlmsg_batch_current(batch);
        let nlh = mnl_nlmsg_put_header(cur);
        (*nlh).nlmsg_len = len;
        cur
    }
}

#[test]
fn a_batch_keeps_the_message_that_overflows_its_limit_current_for_the_next_page() {
    let mut b = buf();
    let head = b.0.as_mut_ptr();
    // SAFETY: a limit of 64 in a buffer of 256 leaves room for a message
    // that overflows it.
    unsafe {
        let batch = mnl_nlmsg_batch_start(head.cast(), 64);
        assert!(mnl_nlmsg_batch_is_empty(batch));
        message(batch, 24);
        assert!(mnl_nlmsg_batch_next(batch));
        message(batch, 24);
        assert!(mnl_nlmsg_batch_next(batch));
        assert_eq!(mnl_nlmsg_batch_size(batch), 48);
        let third = message(batch, 24);
        assert!(!mnl_nlmsg_batch_next(batch));
        assert_eq!(mnl_nlmsg_batch_size(batch), 48);
        assert_eq!(mnl_nlmsg_batch_current(batch), third);

        // After a reset the message that did not fit comes first.
        *head.add(4) = 0x55;
        *third.cast::<u8>().add(4) = 0x77;
        mnl_nlmsg_batch_reset(batch);
        assert_eq!(mnl_nlmsg_batch_size(batch), 24);
        assert_eq!(*head.add(4), 0x77);
        assert_eq!(mnl_nlmsg_batch_current(batch), head.add(24).cast());
        mnl_nlmsg_batch_stop(batch);
    }
}

/// A reply: one message of type `ty` with `seq`, and an error code after
/// its header when `ty` is NLMSG_ERROR.
fn reply(b: &mut Buf, ty: u16, seq: u32, error: i32) -> usize {
    let nlh = header(b);
    // SAFETY: the buffer has room for a header and a struct nlmsgerr.
    unsafe {
        (*nlh).nlmsg_type = ty;
        (*nlh).nlmsg_seq = seq;
        if ty == libc::NLMSG_ERROR as u16 {
            (*nlh).nlmsg_len = 16 + 20;
            b.0[16..20].copy_from_slice(&error.to_ne_bytes());
        }
    }
    len(nlh)
}

unsafe extern "C" fn count(_: *const nlmsghdr, data: *mut c_void) -> c_int {
    // SAFETY: `data` is the counter the test passes.
    unsafe { *data.cast::<u32>() += 1 };
    MNL_CB_OK
}

fn run(b: &Buf, n: usize, seq: u32) -> (c_int, u32) {
    let mut calls = 0u32;
    // SAFETY: `n` bytes of `b` are written; the callback gets `calls`.
    let ret = unsafe {
        mnl_cb_run(
            b.0.as_ptr().cast(),
            n,
            seq,
            0,
            Some(count),
            ptr::from_mut(&mut calls).cast(),
        )
    };
    (ret, calls)
}

#[test]
fn cb_run_gives_data_to_the_callback_and_ends_at_an_ack_or_an_error() {
    let mut b = buf();
    let n = reply(&mut b, 16, 5, 0);
    assert_eq!(run(&b, n, 5), (MNL_CB_OK, 1));

    let n = reply(&mut b, libc::NLMSG_ERROR as u16, 5, 0);
    assert_eq!(run(&b, n, 5), (MNL_CB_STOP, 0));

    let n = reply(&mut b, libc::NLMSG_ERROR as u16, 5, -libc::EEXIST);
    assert_eq!(run(&b, n, 5), (MNL_CB_ERROR, 0));
    assert_eq!(errno(), libc::EEXIST);

    let n = reply(&mut b, libc::NLMSG_DONE as u16, 5, 0);
    assert_eq!(run(&b, n, 5), (MNL_CB_STOP, 0));
}

#[test]
fn cb_run_refuses_a_reply_to_another_sequence_number() {
    let mut b = buf();
    let n = reply(&mut b, 16, 6, 0);
    assert_eq!(run(&b, n, 5), (-1, 0));
    assert_eq!(errno(), libc::EPROTO);
    // Zero on either side is not checked.
    assert_eq!(run(&b, n, 0), (MNL_CB_OK, 1));
}
