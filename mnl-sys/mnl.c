/*
 * The part of libmnl's API that libnftnl calls, written for supervisor so
 * that the binary can be linked statically: Debian ships libnftnl.a but no
 * libmnl.a. Each function does what libmnl 1.0.4 documents for it (the
 * prototypes come from its installed header, so a signature that drifts
 * fails the build). Socket functions serve only nftnl_batch_is_supported,
 * which supervisor never calls; they are here because its object file is
 * linked whole. Left out: mnl_socket_fdopen and mnl_nlmsg_fprintf, which
 * nothing linked calls.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <libmnl/libmnl.h>

/* Messages */

size_t mnl_nlmsg_size(size_t len) { return len + MNL_NLMSG_HDRLEN; }

size_t mnl_nlmsg_get_payload_len(const struct nlmsghdr *nlh) {
    return nlh->nlmsg_len - MNL_NLMSG_HDRLEN;
}

struct nlmsghdr *mnl_nlmsg_put_header(void *buf) {
    struct nlmsghdr *nlh = buf;
    memset(buf, 0, MNL_NLMSG_HDRLEN);
    nlh->nlmsg_len = MNL_NLMSG_HDRLEN;
    return nlh;
}

void *mnl_nlmsg_put_extra_header(struct nlmsghdr *nlh, size_t size) {
    char *extra = (char *)nlh + nlh->nlmsg_len;
    size_t len = MNL_ALIGN(size);
    nlh->nlmsg_len += len;
    memset(extra, 0, len);
    return extra;
}

void *mnl_nlmsg_get_payload(const struct nlmsghdr *nlh) {
    return (char *)nlh + MNL_NLMSG_HDRLEN;
}

void *mnl_nlmsg_get_payload_offset(const struct nlmsghdr *nlh, size_t offset) {
    return (char *)nlh + MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);
}

void *mnl_nlmsg_get_payload_tail(const struct nlmsghdr *nlh) {
    return (char *)nlh + MNL_ALIGN(nlh->nlmsg_len);
}

bool mnl_nlmsg_ok(const struct nlmsghdr *nlh, int len) {
    return len >= (int)sizeof(struct nlmsghdr) &&
           nlh->nlmsg_len >= sizeof(struct nlmsghdr) &&
           (int)nlh->nlmsg_len <= len;
}

struct nlmsghdr *mnl_nlmsg_next(const struct nlmsghdr *nlh, int *len) {
    *len -= MNL_ALIGN(nlh->nlmsg_len);
    return (struct nlmsghdr *)((char *)nlh + MNL_ALIGN(nlh->nlmsg_len));
}

/* Zero on either side means "do not check". */
bool mnl_nlmsg_seq_ok(const struct nlmsghdr *nlh, unsigned int seq) {
    return nlh->nlmsg_seq && seq ? nlh->nlmsg_seq == seq : true;
}

bool mnl_nlmsg_portid_ok(const struct nlmsghdr *nlh, unsigned int portid) {
    return nlh->nlmsg_pid && portid ? nlh->nlmsg_pid == portid : true;
}

/* Batches: messages laid one after another in a caller's buffer. A message
 * that would end past the limit is left where it was written, current and
 * not counted, so the caller (libnftnl's paging) can move it to a new page. */

struct mnl_nlmsg_batch {
    char *buf;
    size_t limit;
    size_t len;
    char *cur;
    bool overflow;
};

struct mnl_nlmsg_batch *mnl_nlmsg_batch_start(void *buf, size_t limit) {
    struct mnl_nlmsg_batch *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    b->buf = buf;
    b->limit = limit;
    b->len = 0;
    b->cur = buf;
    b->overflow = false;
    return b;
}

void mnl_nlmsg_batch_stop(struct mnl_nlmsg_batch *b) { free(b); }

bool mnl_nlmsg_batch_next(struct mnl_nlmsg_batch *b) {
    struct nlmsghdr *nlh = (struct nlmsghdr *)b->cur;
    if (b->len + nlh->nlmsg_len > b->limit) {
        b->overflow = true;
        return false;
    }
    b->len += nlh->nlmsg_len;
    b->cur = b->buf + b->len;
    return true;
}

/* After an overflow the message that did not fit becomes the first. */
void mnl_nlmsg_batch_reset(struct mnl_nlmsg_batch *b) {
    if (b->overflow) {
        struct nlmsghdr *nlh = (struct nlmsghdr *)b->cur;
        memmove(b->buf, b->cur, nlh->nlmsg_len);
        b->len = nlh->nlmsg_len;
        b->overflow = false;
    } else {
        b->len = 0;
    }
    b->cur = b->buf + b->len;
}

size_t mnl_nlmsg_batch_size(struct mnl_nlmsg_batch *b) { return b->len; }

void *mnl_nlmsg_batch_head(struct mnl_nlmsg_batch *b) { return b->buf; }

void *mnl_nlmsg_batch_current(struct mnl_nlmsg_batch *b) { return b->cur; }

bool mnl_nlmsg_batch_is_empty(struct mnl_nlmsg_batch *b) { return b->len == 0; }

/* Attributes */

uint16_t mnl_attr_get_type(const struct nlattr *attr) {
    return attr->nla_type & NLA_TYPE_MASK;
}

uint16_t mnl_attr_get_len(const struct nlattr *attr) { return attr->nla_len; }

uint16_t mnl_attr_get_payload_len(const struct nlattr *attr) {
    return attr->nla_len - MNL_ATTR_HDRLEN;
}

void *mnl_attr_get_payload(const struct nlattr *attr) {
    return (char *)attr + MNL_ATTR_HDRLEN;
}

/* memcpy: a payload is only 4-byte aligned. */
uint8_t mnl_attr_get_u8(const struct nlattr *attr) {
    return *(const uint8_t *)mnl_attr_get_payload(attr);
}

uint16_t mnl_attr_get_u16(const struct nlattr *attr) {
    uint16_t v;
    memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
    return v;
}

uint32_t mnl_attr_get_u32(const struct nlattr *attr) {
    uint32_t v;
    memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
    return v;
}

uint64_t mnl_attr_get_u64(const struct nlattr *attr) {
    uint64_t v;
    memcpy(&v, mnl_attr_get_payload(attr), sizeof(v));
    return v;
}

const char *mnl_attr_get_str(const struct nlattr *attr) {
    return mnl_attr_get_payload(attr);
}

bool mnl_attr_ok(const struct nlattr *attr, int len) {
    return len >= (int)sizeof(struct nlattr) &&
           attr->nla_len >= sizeof(struct nlattr) &&
           (int)attr->nla_len <= len;
}

struct nlattr *mnl_attr_next(const struct nlattr *attr) {
    return (struct nlattr *)((char *)attr + MNL_ALIGN(attr->nla_len));
}

int mnl_attr_type_valid(const struct nlattr *attr, uint16_t maxtype) {
    if (mnl_attr_get_type(attr) > maxtype) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return 1;
}

/* The payload length of the fixed-size types; 0 for the others. */
static size_t fixed_len(enum mnl_attr_data_type type) {
    switch (type) {
    case MNL_TYPE_U8:
        return 1;
    case MNL_TYPE_U16:
        return 2;
    case MNL_TYPE_U32:
        return 4;
    case MNL_TYPE_U64:
    case MNL_TYPE_MSECS:
        return 8;
    default:
        return 0;
    }
}

/* -1 with errno ERANGE for a payload of the wrong size, EINVAL for a string
 * without its NUL; a nonzero `len` is the exact size expected. */
static int validate(const struct nlattr *attr, enum mnl_attr_data_type type,
                    size_t len) {
    uint16_t payload_len = mnl_attr_get_payload_len(attr);
    const char *payload = mnl_attr_get_payload(attr);
    if (payload_len < len) {
        errno = ERANGE;
        return -1;
    }
    switch (type) {
    case MNL_TYPE_FLAG:
        if (payload_len > 0) {
            errno = ERANGE;
            return -1;
        }
        break;
    case MNL_TYPE_NUL_STRING:
        if (payload_len == 0) {
            errno = ERANGE;
            return -1;
        }
        if (payload[payload_len - 1] != '\0') {
            errno = EINVAL;
            return -1;
        }
        break;
    case MNL_TYPE_STRING:
        if (payload_len == 0) {
            errno = ERANGE;
            return -1;
        }
        break;
    case MNL_TYPE_NESTED:
        /* An empty nest is valid; a nonempty one holds a header at least. */
        if (payload_len > 0 && payload_len < MNL_ATTR_HDRLEN) {
            errno = ERANGE;
            return -1;
        }
        break;
    default:
        break;
    }
    if (len && payload_len > len) {
        errno = ERANGE;
        return -1;
    }
    return 0;
}

int mnl_attr_validate(const struct nlattr *attr, enum mnl_attr_data_type type) {
    if ((unsigned int)type >= MNL_TYPE_MAX) {
        errno = EINVAL;
        return -1;
    }
    return validate(attr, type, fixed_len(type));
}

int mnl_attr_validate2(const struct nlattr *attr, enum mnl_attr_data_type type,
                       size_t len) {
    if ((unsigned int)type >= MNL_TYPE_MAX) {
        errno = EINVAL;
        return -1;
    }
    return validate(attr, type, len);
}

/* Calls `cb` for each attribute of `len` bytes at `attr` until one answers
 * MNL_CB_STOP or MNL_CB_ERROR; returns the last answer. */
static int parse(const struct nlattr *attr, int len, mnl_attr_cb_t cb,
                 void *data) {
    int ret = MNL_CB_OK;
    while (mnl_attr_ok(attr, len)) {
        ret = cb(attr, data);
        if (ret <= MNL_CB_STOP)
            return ret;
        len -= MNL_ALIGN(attr->nla_len);
        attr = mnl_attr_next(attr);
    }
    return ret;
}

int mnl_attr_parse(const struct nlmsghdr *nlh, unsigned int offset,
                   mnl_attr_cb_t cb, void *data) {
    const char *start = mnl_nlmsg_get_payload_offset(nlh, offset);
    const char *end = mnl_nlmsg_get_payload_tail(nlh);
    return parse((const struct nlattr *)start, end - start, cb, data);
}

int mnl_attr_parse_nested(const struct nlattr *nest, mnl_attr_cb_t cb,
                          void *data) {
    return parse(mnl_attr_get_payload(nest), mnl_attr_get_payload_len(nest), cb,
                 data);
}

int mnl_attr_parse_payload(const void *payload, size_t len, mnl_attr_cb_t cb,
                           void *data) {
    return parse(payload, len, cb, data);
}

/* Unlike libmnl 1.0.4, the padding is zeroed: no stale bytes of the buffer
 * reach the kernel. */
void mnl_attr_put(struct nlmsghdr *nlh, uint16_t type, size_t len,
                  const void *data) {
    struct nlattr *attr = mnl_nlmsg_get_payload_tail(nlh);
    uint16_t attr_len = MNL_ATTR_HDRLEN + len;
    char *payload = mnl_attr_get_payload(attr);
    attr->nla_type = type;
    attr->nla_len = attr_len;
    memcpy(payload, data, len);
    memset(payload + len, 0, MNL_ALIGN(len) - len);
    nlh->nlmsg_len += MNL_ALIGN(attr_len);
}

void mnl_attr_put_u8(struct nlmsghdr *nlh, uint16_t type, uint8_t data) {
    mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u16(struct nlmsghdr *nlh, uint16_t type, uint16_t data) {
    mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u32(struct nlmsghdr *nlh, uint16_t type, uint32_t data) {
    mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_u64(struct nlmsghdr *nlh, uint16_t type, uint64_t data) {
    mnl_attr_put(nlh, type, sizeof(data), &data);
}

void mnl_attr_put_str(struct nlmsghdr *nlh, uint16_t type, const char *data) {
    mnl_attr_put(nlh, type, strlen(data), data);
}

void mnl_attr_put_strz(struct nlmsghdr *nlh, uint16_t type, const char *data) {
    mnl_attr_put(nlh, type, strlen(data) + 1, data);
}

/* The _check putters put nothing and answer false when the attribute would
 * end past `buflen` bytes from the message's start. */
bool mnl_attr_put_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                        size_t len, const void *data) {
    if (nlh->nlmsg_len + MNL_ATTR_HDRLEN + MNL_ALIGN(len) > buflen)
        return false;
    mnl_attr_put(nlh, type, len, data);
    return true;
}

bool mnl_attr_put_u8_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                           uint8_t data) {
    return mnl_attr_put_check(nlh, buflen, type, sizeof(data), &data);
}

bool mnl_attr_put_u16_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                            uint16_t data) {
    return mnl_attr_put_check(nlh, buflen, type, sizeof(data), &data);
}

bool mnl_attr_put_u32_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                            uint32_t data) {
    return mnl_attr_put_check(nlh, buflen, type, sizeof(data), &data);
}

bool mnl_attr_put_u64_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                            uint64_t data) {
    return mnl_attr_put_check(nlh, buflen, type, sizeof(data), &data);
}

bool mnl_attr_put_str_check(struct nlmsghdr *nlh, size_t buflen, uint16_t type,
                            const char *data) {
    return mnl_attr_put_check(nlh, buflen, type, strlen(data), data);
}

bool mnl_attr_put_strz_check(struct nlmsghdr *nlh, size_t buflen,
                             uint16_t type, const char *data) {
    return mnl_attr_put_check(nlh, buflen, type, strlen(data) + 1, data);
}

/* The nest's length is written by mnl_attr_nest_end. */
struct nlattr *mnl_attr_nest_start(struct nlmsghdr *nlh, uint16_t type) {
    struct nlattr *start = mnl_nlmsg_get_payload_tail(nlh);
    start->nla_type = NLA_F_NESTED | type;
    nlh->nlmsg_len += MNL_ATTR_HDRLEN;
    return start;
}

struct nlattr *mnl_attr_nest_start_check(struct nlmsghdr *nlh, size_t buflen,
                                         uint16_t type) {
    if (nlh->nlmsg_len + MNL_ATTR_HDRLEN > buflen)
        return NULL;
    return mnl_attr_nest_start(nlh, type);
}

void mnl_attr_nest_end(struct nlmsghdr *nlh, struct nlattr *start) {
    start->nla_len = (char *)mnl_nlmsg_get_payload_tail(nlh) - (char *)start;
}

void mnl_attr_nest_cancel(struct nlmsghdr *nlh, struct nlattr *start) {
    nlh->nlmsg_len -= (char *)mnl_nlmsg_get_payload_tail(nlh) - (char *)start;
}

/* Replies */

static int cb_error(const struct nlmsghdr *nlh) {
    const struct nlmsgerr *err = mnl_nlmsg_get_payload(nlh);
    if (nlh->nlmsg_len < mnl_nlmsg_size(sizeof(struct nlmsgerr))) {
        errno = EBADMSG;
        return MNL_CB_ERROR;
    }
    /* Subsystems disagree on the sign of the error. */
    errno = err->error < 0 ? -err->error : err->error;
    return err->error == 0 ? MNL_CB_STOP : MNL_CB_ERROR;
}

/* What a control message means when the caller gave no callback for it:
 * an error (or ack) ends the run, as does DONE; NOOP and OVERRUN pass. */
static int cb_default(const struct nlmsghdr *nlh) {
    switch (nlh->nlmsg_type) {
    case NLMSG_ERROR:
        return cb_error(nlh);
    case NLMSG_DONE:
        return MNL_CB_STOP;
    default:
        return MNL_CB_OK;
    }
}

int mnl_cb_run2(const void *buf, size_t numbytes, unsigned int seq,
                unsigned int portid, mnl_cb_t cb_data, void *data,
                mnl_cb_t *cb_ctl_array, unsigned int cb_ctl_array_len) {
    int ret = MNL_CB_OK;
    int len = numbytes;
    const struct nlmsghdr *nlh = buf;
    while (mnl_nlmsg_ok(nlh, len)) {
        if (!mnl_nlmsg_portid_ok(nlh, portid)) {
            errno = ESRCH;
            return -1;
        }
        if (!mnl_nlmsg_seq_ok(nlh, seq)) {
            errno = EPROTO;
            return -1;
        }
        if (nlh->nlmsg_flags & NLM_F_DUMP_INTR) {
            errno = EINTR;
            return -1;
        }
        if (nlh->nlmsg_type >= NLMSG_MIN_TYPE) {
            if (cb_data)
                ret = cb_data(nlh, data);
        } else if (nlh->nlmsg_type < cb_ctl_array_len) {
            if (cb_ctl_array && cb_ctl_array[nlh->nlmsg_type])
                ret = cb_ctl_array[nlh->nlmsg_type](nlh, data);
        } else {
            ret = cb_default(nlh);
        }
        if (ret <= MNL_CB_STOP)
            return ret;
        nlh = mnl_nlmsg_next(nlh, &len);
    }
    return ret;
}

int mnl_cb_run(const void *buf, size_t numbytes, unsigned int seq,
               unsigned int portid, mnl_cb_t cb_data, void *data) {
    return mnl_cb_run2(buf, numbytes, seq, portid, cb_data, data, NULL, 0);
}

/* Sockets */

struct mnl_socket {
    int fd;
    struct sockaddr_nl addr;
};

struct mnl_socket *mnl_socket_open2(int bus, int flags) {
    struct mnl_socket *nl = calloc(1, sizeof(*nl));
    if (nl == NULL)
        return NULL;
    nl->fd = socket(AF_NETLINK, SOCK_RAW | flags, bus);
    if (nl->fd == -1) {
        free(nl);
        return NULL;
    }
    return nl;
}

struct mnl_socket *mnl_socket_open(int bus) { return mnl_socket_open2(bus, 0); }

int mnl_socket_get_fd(const struct mnl_socket *nl) { return nl->fd; }

unsigned int mnl_socket_get_portid(const struct mnl_socket *nl) {
    return nl->addr.nl_pid;
}

/* Binds, then reads back the port id the kernel chose. */
int mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid) {
    socklen_t len = sizeof(nl->addr);
    nl->addr.nl_family = AF_NETLINK;
    nl->addr.nl_groups = groups;
    nl->addr.nl_pid = pid;
    if (bind(nl->fd, (struct sockaddr *)&nl->addr, sizeof(nl->addr)) < 0)
        return -1;
    if (getsockname(nl->fd, (struct sockaddr *)&nl->addr, &len) < 0)
        return -1;
    if (len != sizeof(nl->addr) || nl->addr.nl_family != AF_NETLINK) {
        errno = EINVAL;
        return -1;
    }
    return 0;
}

ssize_t mnl_socket_sendto(const struct mnl_socket *nl, const void *buf,
                          size_t len) {
    static const struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    return sendto(nl->fd, buf, len, 0, (const struct sockaddr *)&kernel,
                  sizeof(kernel));
}

/* A message cut short by a small buffer is an error (ENOSPC), not data. */
ssize_t mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf,
                            size_t len) {
    struct sockaddr_nl addr;
    struct iovec iov = {.iov_base = buf, .iov_len = len};
    struct msghdr msg = {
        .msg_name = &addr,
        .msg_namelen = sizeof(addr),
        .msg_iov = &iov,
        .msg_iovlen = 1,
    };
    ssize_t n = recvmsg(nl->fd, &msg, 0);
    if (n == -1)
        return -1;
    if (msg.msg_flags & MSG_TRUNC) {
        errno = ENOSPC;
        return -1;
    }
    if (msg.msg_namelen != sizeof(addr)) {
        errno = EINVAL;
        return -1;
    }
    return n;
}

int mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf,
                          socklen_t len) {
    return setsockopt(nl->fd, SOL_NETLINK, type, buf, len);
}

int mnl_socket_getsockopt(const struct mnl_socket *nl, int type, void *buf,
                          socklen_t *len) {
    return getsockopt(nl->fd, SOL_NETLINK, type, buf, len);
}

int mnl_socket_close(struct mnl_socket *nl) {
    int ret = close(nl->fd);
    free(nl);
    return ret;
}
