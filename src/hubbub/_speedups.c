/* hubbub._speedups: the per-packet forward path in C (optional; pure Python otherwise).
 *
 * protect_and_send: SRTP-protect a batch of RTP packets and send them with sendmmsg(2),
 * libsrtp's srtp_protect reached through the function pointer pylibsrtp's cffi module
 * exposes (no link-time dependency on libsrtp), one sendmmsg per 64 datagrams.
 * Below: rewrite_packet, PacketCache, Target, DownState and fanout(),
 * the whole fan-out of one incoming packet to every bound DownTrack in one call.
 *
 * protect_and_send(fd, protect_fn, items) -> (sent, errors, leftovers)
 *   items: list of (srtp_t address: int, plain RTP: bytes, sockaddr: bytes, owner: object)
 *   leftovers: [(protected bytes, index in items)] the kernel did not take (EAGAIN...);
 *   the caller sends them through its event loop so nothing is dropped silently.
 *
 * With OpenSSL headers at build time (HUBBUB_GCM), GcmSender protects outgoing RTP with
 * AEAD_AES_128_GCM itself (RFC 7714, one EVP context per transport, no per-packet SSRC
 * hash lookup or sender replay window); Protector + DISPATCH_FN let one function pointer
 * serve libsrtp- and GcmSender-protected transports alike.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>

#define BATCH 64
#define MAX_PACKET 1500
#define TRAILER 144 /* SRTP_MAX_TRAILER_LEN: auth tag + MKI, generous */

typedef int (*protect_fn_t)(void *ctx, void *rtp, int *len);

static unsigned char buffers[BATCH][MAX_PACKET + TRAILER];
static struct mmsghdr msgs[BATCH];
static struct iovec iovs[BATCH];
static struct sockaddr_storage addrs[BATCH];
static Py_ssize_t indexes[BATCH];

/* Send msgs[0..n); returns how many the kernel took, appends the rest to leftovers. */
static int flush(int fd, int n, PyObject *leftovers)
{
    int done = 0;
    while (done < n) {
        int r = sendmmsg(fd, msgs + done, (unsigned int)(n - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break; /* EAGAIN (socket buffer full) or an error: hand the rest back */
        }
        done += r;
    }
    for (int i = done; i < n; i++) {
        PyObject *tuple = Py_BuildValue("(y#n)", (const char *)buffers[i],
                                        (Py_ssize_t)iovs[i].iov_len, indexes[i]);
        if (tuple == NULL || PyList_Append(leftovers, tuple) < 0) {
            Py_XDECREF(tuple);
            return -1;
        }
        Py_DECREF(tuple);
    }
    return done;
}

static PyObject *protect_and_send(PyObject *self, PyObject *args)
{
    int fd;
    unsigned long long fn_addr;
    PyObject *items;
    if (!PyArg_ParseTuple(args, "iKO!", &fd, &fn_addr, &PyList_Type, &items))
        return NULL;
    protect_fn_t protect = (protect_fn_t)(uintptr_t)fn_addr;
    if (protect == NULL) {
        PyErr_SetString(PyExc_ValueError, "protect_fn is NULL");
        return NULL;
    }
    PyObject *leftovers = PyList_New(0);
    if (leftovers == NULL)
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(items);
    long sent = 0, errors = 0;
    int n = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        PyObject *item = PyList_GET_ITEM(items, k);
        if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) < 3) {
            PyErr_SetString(PyExc_TypeError, "items must be (ctx, packet, sockaddr, ...) tuples");
            goto fail;
        }
        void *ctx = PyLong_AsVoidPtr(PyTuple_GET_ITEM(item, 0));
        PyObject *packet = PyTuple_GET_ITEM(item, 1);
        PyObject *sockaddr = PyTuple_GET_ITEM(item, 2);
        if (PyErr_Occurred())
            goto fail;
        if (!PyBytes_Check(packet) || !PyBytes_Check(sockaddr)) {
            PyErr_SetString(PyExc_TypeError, "packet and sockaddr must be bytes");
            goto fail;
        }
        Py_ssize_t len = PyBytes_GET_SIZE(packet);
        Py_ssize_t alen = PyBytes_GET_SIZE(sockaddr);
        if (len < 12 || len > MAX_PACKET || alen <= 0 ||
            alen > (Py_ssize_t)sizeof(struct sockaddr_storage) || ctx == NULL) {
            errors++;
            continue;
        }
        memcpy(buffers[n], PyBytes_AS_STRING(packet), (size_t)len);
        int out_len = (int)len;
        if (protect(ctx, buffers[n], &out_len) != 0) { /* srtp_err_status_ok == 0 */
            errors++;
            continue;
        }
        memcpy(&addrs[n], PyBytes_AS_STRING(sockaddr), (size_t)alen);
        iovs[n].iov_base = buffers[n];
        iovs[n].iov_len = (size_t)out_len;
        memset(&msgs[n].msg_hdr, 0, sizeof(struct msghdr));
        msgs[n].msg_hdr.msg_name = &addrs[n];
        msgs[n].msg_hdr.msg_namelen = (socklen_t)alen;
        msgs[n].msg_hdr.msg_iov = &iovs[n];
        msgs[n].msg_hdr.msg_iovlen = 1;
        indexes[n] = k;
        n++;
        if (n == BATCH) {
            int done = flush(fd, n, leftovers);
            if (done < 0)
                goto fail;
            sent += done;
            n = 0;
        }
    }
    if (n) {
        int done = flush(fd, n, leftovers);
        if (done < 0)
            goto fail;
        sent += done;
    }
    return Py_BuildValue("(llN)", sent, errors, leftovers);
fail:
    Py_DECREF(leftovers);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * rewrite: the one-byte-extension fast path of hubbub.media.rtp.rewrite_packet, byte for
 * byte (RFC 3550 §5.1 header, RFC 8285 §4.2 elements, RFC 8843 §15 MID appended). Whatever
 * the Python version hands to its two-byte slow path comes back as REWRITE_SLOW.
 * ------------------------------------------------------------------------------------- */

#include <stdint.h>
#include <structmember.h>

#define REWRITE_SLOW (-2)
#define REWRITE_ERROR (-1)
#define REWRITE_ROOM 32 /* output <= input + 4 (block header) + 17 (MID) + 3 (padding) */
#define OUT_MAX 2048

static const char *E_SHORT = "RTP packet shorter than 12 bytes";
static const char *E_VERSION = "RTP version must be 2";
static const char *E_CSRC = "RTP CSRC list truncated";
static const char *E_EXT = "RTP header extension truncated";
static const char *E_ELEMENT = "RTP header extension element truncated";
static const char *E_PADDING = "RTP padding invalid";

/* Writes the rewritten packet to out (room for n + REWRITE_ROOM bytes); returns its length,
 * REWRITE_ERROR with *err set (malformed input) or REWRITE_SLOW. */
static Py_ssize_t rewrite_into(const unsigned char *d, Py_ssize_t n, int pt, uint32_t seq,
                               uint32_t ts, uint32_t ssrc, const unsigned char *ext_map,
                               int mid_id, const unsigned char *mid, Py_ssize_t ml,
                               int twcc_id, Py_ssize_t *twcc_at, unsigned char *out,
                               const char **err)
{
    *twcc_at = 0;
    if (n < 12) {
        *err = E_SHORT;
        return REWRITE_ERROR;
    }
    unsigned char b0 = d[0];
    if ((b0 & 0xC0) != 0x80) {
        *err = E_VERSION;
        return REWRITE_ERROR;
    }
    Py_ssize_t pos = 12 + ((b0 & 0x0F) << 2);
    if (pos > n) {
        *err = E_CSRC;
        return REWRITE_ERROR;
    }
    long profile = -1;
    Py_ssize_t end = pos;
    if (b0 & 0x10) {
        if (pos + 4 > n) {
            *err = E_EXT;
            return REWRITE_ERROR;
        }
        profile = (d[pos] << 8) | d[pos + 1];
        Py_ssize_t words = (d[pos + 2] << 8) | d[pos + 3];
        pos += 4;
        end = pos + (words << 2);
        if (end > n) {
            *err = E_EXT;
            return REWRITE_ERROR;
        }
    }
    if (b0 & 0x20) { /* RFC 3550 §5.1: the last octet counts the padding, itself included */
        Py_ssize_t count = n > end ? d[n - 1] : 0;
        if (count == 0 || end + count > n) {
            *err = E_PADDING;
            return REWRITE_ERROR;
        }
    }
    out[0] = (unsigned char)(0x90 | (b0 & 0x20)); /* CSRCs dropped, X set for now */
    out[1] = (unsigned char)((d[1] & 0x80) | (pt & 0x7F));
    out[2] = (unsigned char)(seq >> 8);
    out[3] = (unsigned char)seq;
    out[4] = (unsigned char)(ts >> 24);
    out[5] = (unsigned char)(ts >> 16);
    out[6] = (unsigned char)(ts >> 8);
    out[7] = (unsigned char)ts;
    out[8] = (unsigned char)(ssrc >> 24);
    out[9] = (unsigned char)(ssrc >> 16);
    out[10] = (unsigned char)(ssrc >> 8);
    out[11] = (unsigned char)ssrc;
    out[12] = 0xBE;
    out[13] = 0xDE;
    Py_ssize_t o = 16;
    if (profile == 0xBEDE) {
        /* Kept elements are copied in order; padding, dropped elements and anything after a
         * reserved id 15 are left out (RFC 8285 §4.2). */
        while (pos < end) {
            unsigned char b = d[pos];
            int i = b >> 4;
            if (i == 0) {
                pos++;
                while (pos < end && d[pos] == 0)
                    pos++;
                continue;
            }
            if (i == 15)
                break;
            Py_ssize_t ln = (b & 0x0F) + 2;
            if (pos + ln > end) {
                *err = E_ELEMENT;
                return REWRITE_ERROR;
            }
            int j = ext_map[i];
            if (j != 0 && j != mid_id && j != twcc_id) {
                if (j != i && j > 14)
                    return REWRITE_SLOW;
                memcpy(out + o, d + pos, (size_t)ln);
                out[o] = (unsigned char)((j << 4) | (b & 0x0F));
                o += ln;
            }
            pos += ln;
        }
    } else if ((profile & 0xFFF0) == 0x1000) {
        return REWRITE_SLOW;
    }
    if (mid_id) {
        if (mid_id > 14 || ml == 0 || ml > 16)
            return REWRITE_SLOW;
        out[o++] = (unsigned char)((mid_id << 4) | (ml - 1));
        memcpy(out + o, mid, (size_t)ml);
        o += ml;
    }
    if (twcc_id) { /* the transport-wide seq, written by the sender: 0 until then */
        if (twcc_id > 14)
            return REWRITE_SLOW;
        out[o++] = (unsigned char)((twcc_id << 4) | 1);
        *twcc_at = o;
        out[o++] = 0;
        out[o++] = 0;
    }
    Py_ssize_t size = o - 16;
    if (size == 0) {
        o = 12;
        out[0] &= 0xEF; /* no element left: no X bit, no empty block */
    } else {
        Py_ssize_t pad = (-size) & 3;
        memset(out + o, 0, (size_t)pad);
        o += pad;
        out[14] = (unsigned char)(((size + pad) >> 2) >> 8);
        out[15] = (unsigned char)((size + pad) >> 2);
    }
    memcpy(out + o, d + end, (size_t)(n - end));
    return o + (n - end);
}

/* Adds offsets to the VP8 PictureID and TL0PICIDX of a rewritten packet (RFC 7741 §4.2) in
 * place: a DownTrack moved to another simulcast layer continues the numbering the viewer saw
 * (sfu/vp8.py shift_descriptor is the pure-Python twin). Fields the descriptor lacks, and
 * packets too short to hold them, are left alone. */
static void vp8_shift(unsigned char *p, Py_ssize_t n, long long pid_offset, long long tl0_offset)
{
    Py_ssize_t i = 12;
    if (p[0] & 0x10)
        i += 4 + (((Py_ssize_t)p[14] << 8 | p[15]) << 2);
    Py_ssize_t end = (p[0] & 0x20) ? n - p[n - 1] : n;
    if (i + 1 >= end || !(p[i] & 0x80))
        return;
    unsigned char x = p[i + 1];
    i += 2;
    if (x & 0x80) {
        if (i >= end)
            return;
        if (p[i] & 0x80) {
            if (i + 1 >= end)
                return;
            long long pid = ((p[i] & 0x7F) << 8 | p[i + 1]) + pid_offset;
            p[i] = (unsigned char)(0x80 | ((pid >> 8) & 0x7F));
            p[i + 1] = (unsigned char)pid;
            i += 2;
        } else {
            p[i] = (unsigned char)((p[i] + pid_offset) & 0x7F);
            i += 1;
        }
    }
    if ((x & 0x40) && i < end)
        p[i] = (unsigned char)(p[i] + tl0_offset);
}

static int ext_map_ok(PyObject *ext_map)
{
    return PyBytes_Check(ext_map) && PyBytes_GET_SIZE(ext_map) == 256;
}

static PyObject *py_rewrite(PyObject *self, PyObject *args)
{
    Py_buffer data;
    int pt, mid_id, twcc_id = 0;
    unsigned long seq, ts, ssrc;
    PyObject *ext_map;
    Py_buffer mid;
    if (!PyArg_ParseTuple(args, "y*ikkkSiy*|i", &data, &pt, &seq, &ts, &ssrc, &ext_map, &mid_id,
                          &mid, &twcc_id))
        return NULL;
    PyObject *result = NULL;
    if (!ext_map_ok(ext_map)) {
        PyErr_SetString(PyExc_ValueError, "ext_map must have 256 entries");
        goto done;
    }
    if (data.len + REWRITE_ROOM > OUT_MAX) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    unsigned char out[OUT_MAX];
    const char *err = NULL;
    Py_ssize_t twcc_at;
    Py_ssize_t n = rewrite_into(data.buf, data.len, pt, (uint32_t)seq, (uint32_t)ts,
                                (uint32_t)ssrc, (const unsigned char *)PyBytes_AS_STRING(ext_map),
                                mid_id, mid.buf, mid.len, twcc_id, &twcc_at, out, &err);
    if (n == REWRITE_ERROR)
        PyErr_SetString(PyExc_ValueError, err);
    else if (n == REWRITE_SLOW)
        result = Py_NewRef(Py_None);
    else
        result = PyBytes_FromStringAndSize((const char *)out, n);
done:
    PyBuffer_Release(&data);
    PyBuffer_Release(&mid);
    return result;
}

/* ---------------------------------------------------------------------------------------
 * PacketCache: hubbub.sfu.packet_cache.PacketCache with the same API, filled from C.
 * ------------------------------------------------------------------------------------- */

/* One slot per seq & mask: everything a put or a NACK touches sits in one cache line. */
typedef struct {
    long long seq;
    double time;
    double resent;
    PyObject *packet;
} Slot;

typedef struct {
    PyObject_HEAD
    Py_ssize_t mask;
    Slot *slots;
} CacheObject;

static PyTypeObject CacheType;

static PyObject *cache_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"size", NULL};
    Py_ssize_t size;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "n", kwlist, &size))
        return NULL;
    if (size <= 0 || (size & (size - 1))) {
        PyErr_Format(PyExc_ValueError, "cache size must be a power of two, got %zd", size);
        return NULL;
    }
    CacheObject *self = (CacheObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->mask = size - 1;
    self->slots = PyMem_Calloc((size_t)size, sizeof(Slot));
    if (self->slots == NULL) {
        Py_DECREF(self);
        return PyErr_NoMemory();
    }
    for (Py_ssize_t i = 0; i < size; i++) {
        self->slots[i].seq = -1;
        self->slots[i].resent = -Py_HUGE_VAL;
    }
    return (PyObject *)self;
}

static void cache_dealloc(CacheObject *self)
{
    if (self->slots != NULL) {
        for (Py_ssize_t i = 0; i <= self->mask; i++)
            Py_XDECREF(self->slots[i].packet);
    }
    PyMem_Free(self->slots);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Steals a reference to packet. */
static void cache_put(CacheObject *c, long long seq, PyObject *packet, double now)
{
    Slot *slot = &c->slots[seq & c->mask];
    slot->seq = seq;
    Py_XSETREF(slot->packet, packet);
    slot->time = now;
    slot->resent = -Py_HUGE_VAL;
}

static PyObject *cache_py_put(CacheObject *self, PyObject *args)
{
    long long seq;
    PyObject *packet;
    double now;
    if (!PyArg_ParseTuple(args, "LOd", &seq, &packet, &now))
        return NULL;
    cache_put(self, seq, Py_NewRef(packet), now);
    Py_RETURN_NONE;
}

static Slot *cache_slot(CacheObject *self, PyObject *arg)
{
    long long seq = PyLong_AsLongLong(arg);
    if (seq == -1 && PyErr_Occurred())
        return NULL;
    Slot *slot = &self->slots[seq & self->mask];
    return slot->seq == seq ? slot : NULL;
}

static PyObject *cache_py_get(CacheObject *self, PyObject *arg)
{
    Slot *slot = cache_slot(self, arg);
    if (slot != NULL && slot->packet != NULL)
        return Py_NewRef(slot->packet);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *cache_py_sent_at(CacheObject *self, PyObject *arg)
{
    Slot *slot = cache_slot(self, arg);
    if (slot != NULL)
        return PyFloat_FromDouble(slot->time);
    if (PyErr_Occurred())
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *cache_py_take(CacheObject *self, PyObject *args)
{
    long long seq;
    double now, guard;
    if (!PyArg_ParseTuple(args, "Ldd", &seq, &now, &guard))
        return NULL;
    Slot *slot = &self->slots[seq & self->mask];
    if (slot->seq != seq || now - slot->resent < guard || slot->packet == NULL)
        Py_RETURN_NONE;
    slot->resent = now;
    return Py_NewRef(slot->packet);
}

static PyObject *cache_size(CacheObject *self, void *closure)
{
    return PyLong_FromSsize_t(self->mask + 1);
}

static PyMethodDef cache_methods[] = {
    {"put", (PyCFunction)cache_py_put, METH_VARARGS, "put(seq, packet, now)"},
    {"get", (PyCFunction)cache_py_get, METH_O, "get(seq) -> bytes | None"},
    {"sent_at", (PyCFunction)cache_py_sent_at, METH_O, "sent_at(seq) -> float | None"},
    {"take_for_resend", (PyCFunction)cache_py_take, METH_VARARGS,
     "take_for_resend(seq, now, guard) -> bytes | None"},
    {NULL},
};

static PyGetSetDef cache_getset[] = {
    {"size", (getter)cache_size, NULL, "number of slots", NULL},
    {NULL},
};

static PyTypeObject CacheType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.PacketCache",
    .tp_basicsize = sizeof(CacheObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Ring of sent RTP packets by outgoing seq (same API as sfu.packet_cache).",
    .tp_new = cache_new,
    .tp_dealloc = (destructor)cache_dealloc,
    .tp_methods = cache_methods,
    .tp_getset = cache_getset,
};

/* ---------------------------------------------------------------------------------------
 * Target: where one transport's RTP goes (socket fd, srtp_t, peer sockaddr), kept current
 * by WebRtcTransport; counts what the C path sent for its stats.
 * ------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    int fd;
    protect_fn_t protect;
    void *ctx;
    struct sockaddr_storage sa;
    socklen_t salen;
    PyObject *keep;     /* keeps the srtp_t alive */
    PyObject *send_raw; /* callable(bytes): the event loop's send, for what sendmmsg refused */
    long long packets;
    long long octets;
    /* Send-side bandwidth estimation (draft-holmer-rmcat-transport-wide-cc-extensions-01):
     * the next transport-wide seq, and what the fan-out sent since the last drain() as
     * (seq, size, time) records, allocated by enable_twcc() only. */
    long long twcc_seq;
    long long twcc_overwritten;
    unsigned char *sent; /* TWCC_RING records of TWCC_RECORD bytes */
    int sent_head, sent_count;
} TargetObject;

#define TWCC_RING 1024
#define TWCC_RECORD 12 /* little-endian u16 seq, u16 size, f64 time: struct "<HHd" */

static void target_record(TargetObject *t, unsigned int seq, Py_ssize_t size, double now)
{
    unsigned char *r = t->sent + (size_t)t->sent_head * TWCC_RECORD;
    uint16_t s16 = (uint16_t)seq, z16 = (uint16_t)(size > 0xFFFF ? 0xFFFF : size);
    r[0] = (unsigned char)s16;
    r[1] = (unsigned char)(s16 >> 8);
    r[2] = (unsigned char)z16;
    r[3] = (unsigned char)(z16 >> 8);
    memcpy(r + 4, &now, sizeof(double)); /* x86-64 and aarch64 are little-endian */
    t->sent_head = (t->sent_head + 1) % TWCC_RING;
    if (t->sent_count < TWCC_RING)
        t->sent_count++;
    else
        t->twcc_overwritten++;
}

static PyTypeObject TargetType;

static PyObject *target_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    TargetObject *self = (TargetObject *)type->tp_alloc(type, 0);
    if (self != NULL)
        self->fd = -1;
    return (PyObject *)self;
}

static int target_traverse(TargetObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    Py_VISIT(self->send_raw);
    return 0;
}

static int target_clear_refs(TargetObject *self)
{
    Py_CLEAR(self->keep);
    Py_CLEAR(self->send_raw);
    return 0;
}

static void target_dealloc(TargetObject *self)
{
    PyObject_GC_UnTrack(self);
    target_clear_refs(self);
    PyMem_Free(self->sent);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *target_enable_twcc(TargetObject *self, PyObject *unused)
{
    if (self->sent == NULL) {
        self->sent = PyMem_Malloc((size_t)TWCC_RING * TWCC_RECORD);
        if (self->sent == NULL)
            return PyErr_NoMemory();
    }
    Py_RETURN_NONE;
}

static PyObject *target_take_twcc_seq(TargetObject *self, PyObject *unused)
{
    return PyLong_FromLongLong(self->twcc_seq++ & 0xFFFF);
}

static PyObject *target_drain_sent(TargetObject *self, PyObject *unused)
{
    int n = self->sent_count;
    PyObject *out = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)n * TWCC_RECORD);
    if (out == NULL)
        return NULL;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    int start = (self->sent_head - n + TWCC_RING) % TWCC_RING;
    for (int i = 0; i < n; i++)
        memcpy(o + (size_t)i * TWCC_RECORD,
               self->sent + (size_t)((start + i) % TWCC_RING) * TWCC_RECORD, TWCC_RECORD);
    self->sent_count = 0;
    return out;
}

static PyObject *target_set(TargetObject *self, PyObject *args)
{
    int fd;
    unsigned long long fn, ctx;
    Py_buffer sa;
    PyObject *keep, *send_raw;
    if (!PyArg_ParseTuple(args, "iKKy*OO", &fd, &fn, &ctx, &sa, &keep, &send_raw))
        return NULL;
    if (sa.len > (Py_ssize_t)sizeof(struct sockaddr_storage)) {
        PyBuffer_Release(&sa);
        PyErr_SetString(PyExc_ValueError, "sockaddr too long");
        return NULL;
    }
    memset(&self->sa, 0, sizeof(self->sa));
    memcpy(&self->sa, sa.buf, (size_t)sa.len);
    self->salen = (socklen_t)sa.len;
    PyBuffer_Release(&sa);
    self->fd = fd;
    self->protect = (protect_fn_t)(uintptr_t)fn;
    self->ctx = (void *)(uintptr_t)ctx;
    Py_XSETREF(self->keep, Py_NewRef(keep));
    Py_XSETREF(self->send_raw, Py_NewRef(send_raw));
    Py_RETURN_NONE;
}

static PyObject *target_clear(TargetObject *self, PyObject *unused)
{
    self->fd = -1;
    self->protect = NULL;
    self->ctx = NULL;
    self->salen = 0;
    target_clear_refs(self);
    Py_RETURN_NONE;
}

static int target_ready(TargetObject *t)
{
    return t->fd >= 0 && t->protect != NULL && t->ctx != NULL && t->salen > 0;
}

static PyObject *target_py_ready(TargetObject *self, void *closure)
{
    return PyBool_FromLong(target_ready(self));
}

static PyMethodDef target_methods[] = {
    {"set", (PyCFunction)target_set, METH_VARARGS,
     "set(fd, protect_fn, srtp_t, sockaddr, keep, send_raw): send there from now on"},
    {"enable_twcc", (PyCFunction)target_enable_twcc, METH_NOARGS,
     "stamp transport-wide seqs into reserved elements and record what was sent"},
    {"take_twcc_seq", (PyCFunction)target_take_twcc_seq, METH_NOARGS,
     "the next transport-wide seq, for a packet sent from Python"},
    {"drain_sent", (PyCFunction)target_drain_sent, METH_NOARGS,
     "bytes of '<HHd' (seq, size, time) records sent by the fan-out since the last drain"},
    {"clear", (PyCFunction)target_clear, METH_NOARGS, "clear(): not ready (packets go to sink)"},
    {NULL},
};

static PyMemberDef target_members[] = {
    {"packets", T_LONGLONG, offsetof(TargetObject, packets), READONLY, "RTP packets sent"},
    {"octets", T_LONGLONG, offsetof(TargetObject, octets), READONLY, "SRTP octets sent"},
    {"send_raw", T_OBJECT, offsetof(TargetObject, send_raw), READONLY, "fallback sender"},
    {"twcc_overwritten", T_LONGLONG, offsetof(TargetObject, twcc_overwritten), READONLY,
     "send records lost because nobody drained them in time"},
    {NULL},
};

static PyGetSetDef target_getset[] = {
    {"ready", (getter)target_py_ready, NULL, "fd, srtp_t and address are all set", NULL},
    {NULL},
};

static PyTypeObject TargetType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.Target",
    .tp_basicsize = sizeof(TargetObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "A transport's send side for the C fan-out (fd, srtp_t, peer address).",
    .tp_new = target_new,
    .tp_dealloc = (destructor)target_dealloc,
    .tp_traverse = (traverseproc)target_traverse,
    .tp_clear = (inquiry)target_clear_refs,
    .tp_methods = target_methods,
    .tp_members = target_members,
    .tp_getset = target_getset,
};

/* ---------------------------------------------------------------------------------------
 * DownState: the per-packet state of one DownTrack, shared by its Python code (slow path:
 * binds, re-basing, keyframe wait) and fanout() (everything else).
 * ------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    long long pt, ssrc, seq_offset, ts_offset, last_seq, last_ts, sync_seq;
    long long packets_sent, octets_sent, dropped_old, dropped_malformed, mid_id, twcc_id;
    long long vp8_pid_offset, vp8_tl0_offset;
    double last_time;
    int guard, slow, vp8_shift;
    PyObject *mid, *ext_map, *cache, *target, *sink_send, *owner;
} StateObject;

static PyTypeObject StateType;

static PyObject *state_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    StateObject *self = (StateObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->pt = -1;
    self->slow = 1;
    self->last_time = -Py_HUGE_VAL;
    self->mid = PyBytes_FromStringAndSize(NULL, 0);
    self->ext_map = Py_NewRef(Py_None);
    self->cache = Py_NewRef(Py_None);
    self->target = Py_NewRef(Py_None);
    self->sink_send = Py_NewRef(Py_None);
    self->owner = Py_NewRef(Py_None);
    if (self->mid == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static int state_traverse(StateObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->mid);
    Py_VISIT(self->ext_map);
    Py_VISIT(self->cache);
    Py_VISIT(self->target);
    Py_VISIT(self->sink_send);
    Py_VISIT(self->owner);
    return 0;
}

static int state_clear(StateObject *self)
{
    Py_CLEAR(self->mid);
    Py_CLEAR(self->ext_map);
    Py_CLEAR(self->cache);
    Py_CLEAR(self->target);
    Py_CLEAR(self->sink_send);
    Py_CLEAR(self->owner);
    return 0;
}

static void state_dealloc(StateObject *self)
{
    PyObject_GC_UnTrack(self);
    state_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define LL(name, doc) {#name, T_LONGLONG, offsetof(StateObject, name), 0, doc}
static PyMemberDef state_members[] = {
    LL(pt, "viewer payload type, -1 = none"),
    LL(ssrc, "outgoing SSRC"),
    LL(seq_offset, "added to incoming seq (mod 2^16)"),
    LL(ts_offset, "added to incoming timestamp (mod 2^32)"),
    LL(last_seq, "highest outgoing seq sent"),
    LL(last_ts, "timestamp of last_seq"),
    LL(sync_seq, "incoming seq the offsets were re-based on"),
    LL(packets_sent, "packets forwarded"),
    LL(octets_sent, "payload octets forwarded (RFC 3550 §6.4.1)"),
    LL(dropped_old, "packets older than the re-basing point"),
    LL(dropped_malformed, "packets rewrite_packet refused"),
    LL(mid_id, "viewer MID extension id, 0 = none"),
    LL(twcc_id, "viewer transport-wide seq extension id, 0 = none"),
    LL(vp8_pid_offset, "added to the VP8 PictureID when vp8_shift"),
    LL(vp8_tl0_offset, "added to the VP8 TL0PICIDX when vp8_shift"),
    {"vp8_shift", T_BOOL, offsetof(StateObject, vp8_shift), 0, "shift VP8 descriptors"},
    {"last_time", T_DOUBLE, offsetof(StateObject, last_time), 0, "arrival time of last_seq"},
    {"guard", T_BOOL, offsetof(StateObject, guard), 0, "drop packets older than sync_seq"},
    {"slow", T_BOOL, offsetof(StateObject, slow), 0, "the next packet needs the Python path"},
    {"mid", T_OBJECT_EX, offsetof(StateObject, mid), 0, "MID value (bytes)"},
    {"ext_map", T_OBJECT_EX, offsetof(StateObject, ext_map), 0, "256-byte extension id map"},
    {"cache", T_OBJECT_EX, offsetof(StateObject, cache), 0, "PacketCache"},
    {"target", T_OBJECT_EX, offsetof(StateObject, target), 0, "Target or None"},
    {"sink_send", T_OBJECT_EX, offsetof(StateObject, sink_send), 0, "sink.send_rtp"},
    {"owner", T_OBJECT_EX, offsetof(StateObject, owner), 0, "the DownTrack"},
    {NULL},
};
#undef LL

static PyTypeObject StateType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.DownState",
    .tp_basicsize = sizeof(StateObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Per-packet state of one DownTrack (see sfu/downtrack.py).",
    .tp_new = state_new,
    .tp_dealloc = (destructor)state_dealloc,
    .tp_traverse = (traverseproc)state_traverse,
    .tp_clear = (inquiry)state_clear,
    .tp_members = state_members,
};

/* ---------------------------------------------------------------------------------------
 * fanout(states, data, seq, ts, length, now) -> None | (slow, leftovers)
 *
 * For each DownState of a Track: drop if older than the re-basing point, rewrite, remember
 * in the cache, count, then SRTP-protect into a sendmmsg batch (Target ready) or hand the
 * bytes to sink_send. States flagged slow (or not DownState, or whose rewrite needs the
 * two-byte form) come back in `slow` (their owners, untouched) for DownTrack.forward;
 * `leftovers` are (protected bytes, Target) the kernel refused, for Target.send_raw.
 * ------------------------------------------------------------------------------------- */

#define GUARD_SPAN 0x1000

static unsigned char fo_buffers[BATCH][OUT_MAX + TRAILER];
static struct mmsghdr fo_msgs[BATCH];
static struct iovec fo_iovs[BATCH];
static PyObject *fo_targets[BATCH]; /* strong references while queued */

static int fo_flush(int fd, int n, PyObject **leftovers)
{
    int done = 0;
    while (done < n) {
        int r = sendmmsg(fd, fo_msgs + done, (unsigned int)(n - done), 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        done += r;
    }
    int status = 0;
    for (int i = 0; i < n; i++) {
        if (i >= done && status == 0) {
            if (*leftovers == NULL && (*leftovers = PyList_New(0)) == NULL)
                status = -1;
            PyObject *tuple = status ? NULL : Py_BuildValue("(y#O)", (const char *)fo_buffers[i],
                                                   (Py_ssize_t)fo_iovs[i].iov_len, fo_targets[i]);
            if (tuple == NULL || PyList_Append(*leftovers, tuple) < 0)
                status = -1;
            Py_XDECREF(tuple);
        }
        Py_CLEAR(fo_targets[i]);
    }
    return status;
}

static PyObject *fanout(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6 || !PyList_Check(args[0]) || !PyBytes_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fanout(states: list, data: bytes, seq, ts, length, now)");
        return NULL;
    }
    PyObject *states = args[0];
    PyObject *data = args[1];
    long long seq = PyLong_AsLongLong(args[2]);
    long long ts = PyLong_AsLongLong(args[3]);
    long long length = PyLong_AsLongLong(args[4]);
    double now = PyFloat_AsDouble(args[5]);
    if (PyErr_Occurred())
        return NULL;
    const unsigned char *d = (const unsigned char *)PyBytes_AS_STRING(data);
    Py_ssize_t n = PyBytes_GET_SIZE(data);
    PyObject *slow = NULL, *leftovers = NULL;
    int queued = 0, fd = -1;
    unsigned char out[OUT_MAX];
    Py_ssize_t count = PyList_GET_SIZE(states);
    for (Py_ssize_t k = 0; k < count && k < PyList_GET_SIZE(states); k++) {
        PyObject *item = PyList_GET_ITEM(states, k);
        StateObject *st = (StateObject *)item;
        if (Py_TYPE(item) != &StateType || st->slow || !ext_map_ok(st->ext_map) ||
            !PyBytes_Check(st->mid) || n + REWRITE_ROOM > OUT_MAX ||
            (st->cache != Py_None && Py_TYPE(st->cache) != &CacheType)) {
            PyObject *owner = Py_TYPE(item) == &StateType ? st->owner
                                                          : PyObject_GetAttrString(item, "owner");
            if (owner == NULL)
                goto fail;
            if (Py_TYPE(item) != &StateType)
                Py_DECREF(owner); /* still referenced by the state */
            if (slow == NULL && (slow = PyList_New(0)) == NULL)
                goto fail;
            if (PyList_Append(slow, owner) < 0)
                goto fail;
            continue;
        }
        if (st->guard) {
            /* Older than the packet we re-based on: its output seq would collide with
             * packets already sent from the previous binding. */
            long long dist = (seq - st->sync_seq) & 0xFFFF;
            if (dist >= 0x8000) {
                st->dropped_old++;
                continue;
            }
            if (dist >= GUARD_SPAN)
                st->guard = 0;
        }
        uint32_t out_seq = (uint32_t)((seq + st->seq_offset) & 0xFFFF);
        uint32_t out_ts = (uint32_t)((ts + st->ts_offset) & 0xFFFFFFFFLL);
        const char *err = NULL;
        Py_ssize_t twcc_at;
        Py_ssize_t len = rewrite_into(d, n, (int)st->pt, out_seq, out_ts, (uint32_t)st->ssrc,
                                      (const unsigned char *)PyBytes_AS_STRING(st->ext_map),
                                      (int)st->mid_id,
                                      (const unsigned char *)PyBytes_AS_STRING(st->mid),
                                      PyBytes_GET_SIZE(st->mid), (int)st->twcc_id, &twcc_at,
                                      out, &err);
        if (len == REWRITE_ERROR) {
            st->dropped_malformed++;
            continue;
        }
        if (len == REWRITE_SLOW) {
            if (slow == NULL && (slow = PyList_New(0)) == NULL)
                goto fail;
            if (PyList_Append(slow, st->owner) < 0)
                goto fail;
            continue;
        }
        if (st->vp8_shift)
            vp8_shift(out, len, st->vp8_pid_offset, st->vp8_tl0_offset);
        /* A bytes object only for the resend cache or a Python sink (no cache: no NACK). */
        TargetObject *t = (TargetObject *)st->target;
        int direct = Py_TYPE(t) == &TargetType && target_ready(t);
        PyObject *packet = NULL;
        if (st->cache != Py_None || !direct) {
            packet = PyBytes_FromStringAndSize((const char *)out, len);
            if (packet == NULL)
                goto fail;
        }
        if (((out_seq - st->last_seq) & 0xFFFF) < 0x8000) {
            st->last_seq = out_seq;
            st->last_ts = out_ts;
            st->last_time = now;
        }
        st->packets_sent++;
        st->octets_sent += length;
        if (direct) {
            if (packet != NULL)
                cache_put((CacheObject *)st->cache, out_seq, packet, now); /* steals packet */
            if (queued && (queued == BATCH || t->fd != fd)) {
                if (fo_flush(fd, queued, &leftovers) < 0) {
                    queued = 0;
                    goto fail;
                }
                queued = 0;
            }
            fd = t->fd;
            unsigned char *buf = fo_buffers[queued];
            memcpy(buf, out, (size_t)len);
            if (twcc_at && t->sent != NULL) {
                /* The cached copy keeps 0: a resend goes out through Python with a new seq. */
                unsigned int tseq = (unsigned int)(t->twcc_seq++ & 0xFFFF);
                buf[twcc_at] = (unsigned char)(tseq >> 8);
                buf[twcc_at + 1] = (unsigned char)tseq;
                target_record(t, tseq, len, now);
            }
            int plen = (int)len;
            if (t->protect(t->ctx, buf, &plen) != 0)
                continue; /* counted nowhere in Python either: libsrtp refused the packet */
            t->packets++;
            t->octets += plen;
            fo_iovs[queued].iov_base = buf;
            fo_iovs[queued].iov_len = (size_t)plen;
            struct msghdr *h = &fo_msgs[queued].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_name = &t->sa;
            h->msg_namelen = t->salen;
            h->msg_iov = &fo_iovs[queued];
            h->msg_iovlen = 1;
            fo_targets[queued] = Py_NewRef((PyObject *)t);
            queued++;
        } else {
            if (st->cache != Py_None) {
                Py_INCREF(packet);
                cache_put((CacheObject *)st->cache, out_seq, packet, now);
            }
            if (st->sink_send != Py_None) {
                PyObject *r = PyObject_CallOneArg(st->sink_send, packet);
                Py_DECREF(packet);
                if (r == NULL)
                    goto fail;
                Py_DECREF(r);
            } else {
                Py_DECREF(packet);
            }
        }
    }
    if (queued && fo_flush(fd, queued, &leftovers) < 0) {
        queued = 0;
        goto fail;
    }
    if (slow == NULL && leftovers == NULL)
        Py_RETURN_NONE;
    return Py_BuildValue("(NN)", slow ? slow : Py_NewRef(Py_None),
                         leftovers ? leftovers : Py_NewRef(Py_None));
fail:
    if (queued) {
        PyObject *type, *value, *tb;
        PyErr_Fetch(&type, &value, &tb);
        fo_flush(fd, queued, &leftovers);
        PyErr_Restore(type, value, tb);
    }
    Py_XDECREF(slow);
    Py_XDECREF(leftovers);
    return NULL;
}

/* ---------------------------------------------------------------------------------------
 * Protector: a (protect_fn, ctx) pair behind one address, so a single module-wide function
 * pointer (dispatch_protect, exported as DISPATCH_FN) can drive transports whose outgoing
 * RTP is protected by libsrtp and transports protected by GcmSender alike.
 * ------------------------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    protect_fn_t fn; /* GcmObject starts the same way: a GcmSender is its own Protector */
    void *ctx;
    PyObject *keep; /* keeps ctx alive */
} ProtectorObject;

static int dispatch_protect(void *p, void *rtp, int *len)
{
    ProtectorObject *x = (ProtectorObject *)p;
    return x->fn(x->ctx, rtp, len);
}

static PyObject *protector_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"protect_fn", "ctx", "keep", NULL};
    unsigned long long fn, ctx;
    PyObject *keep;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "KKO", kwlist, &fn, &ctx, &keep))
        return NULL;
    if (fn == 0 || ctx == 0) {
        PyErr_SetString(PyExc_ValueError, "protect_fn and ctx must not be NULL");
        return NULL;
    }
    ProtectorObject *self = (ProtectorObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->fn = (protect_fn_t)(uintptr_t)fn;
    self->ctx = (void *)(uintptr_t)ctx;
    self->keep = Py_NewRef(keep);
    return (PyObject *)self;
}

static int protector_traverse(ProtectorObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->keep);
    return 0;
}

static int protector_clear(ProtectorObject *self)
{
    Py_CLEAR(self->keep);
    return 0;
}

static void protector_dealloc(ProtectorObject *self)
{
    PyObject_GC_UnTrack(self);
    protector_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *protector_address(ProtectorObject *self, void *closure)
{
    return PyLong_FromVoidPtr(self);
}

static PyGetSetDef protector_getset[] = {
    {"address", (getter)protector_address, NULL, "ctx for DISPATCH_FN (valid while alive)",
     NULL},
    {NULL},
};

static PyTypeObject ProtectorType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.Protector",
    .tp_basicsize = sizeof(ProtectorObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Protector(protect_fn, ctx, keep): one address for DISPATCH_FN.",
    .tp_new = protector_new,
    .tp_dealloc = (destructor)protector_dealloc,
    .tp_traverse = (traverseproc)protector_traverse,
    .tp_clear = (inquiry)protector_clear,
    .tp_getset = protector_getset,
};

#ifdef HUBBUB_GCM
/* ---------------------------------------------------------------------------------------
 * GcmSender: SRTP AEAD_AES_128_GCM protect for outgoing RTP (RFC 7714) on OpenSSL EVP,
 * from the session key and salt (derived in hubbub.media.srtp_kdf). One EVP context keyed
 * once; per packet only the IV changes. The sender keeps no replay window (it never
 * refuses its own retransmissions): just the highest packet index per SSRC.
 * ------------------------------------------------------------------------------------- */

#include <openssl/evp.h>
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
#include <openssl/core_names.h>
#endif

#define GCM_TAG 16
#define GCM_INLINE_SSRCS 8   /* a viewer has ~4-10 SSRCs: kept in the object, one cache line */
#define GCM_MAX_SSRCS 4096 /* beyond this the least recently used SSRC is forgotten */

typedef struct {
    uint32_t ssrc;
    uint64_t index; /* ROC << 16 | highest seq (RFC 3711 §3.3.1) */
    uint64_t used;  /* for eviction */
} RocEntry;

typedef struct {
    PyObject_HEAD
    protect_fn_t fn; /* gcm_protect, self: the ProtectorObject prefix, for DISPATCH_FN */
    void *ctx;
    EVP_CIPHER_CTX *evp;
    unsigned char salt[12];
    RocEntry *entries; /* inline_entries until more SSRCs than that appear */
    int count, capacity, last;
    uint64_t clock;
    long long packets;
    PyObject *error; /* raised by protect() on a malformed packet */
    RocEntry inline_entries[GCM_INLINE_SSRCS];
} GcmObject;

static PyTypeObject GcmType;

/* The entry for ssrc, created (index 0, as a fresh libsrtp stream) if new; NULL if OOM. */
static RocEntry *gcm_entry(GcmObject *g, uint32_t ssrc)
{
    g->clock++;
    if (g->last < g->count && g->entries[g->last].ssrc == ssrc) {
        g->entries[g->last].used = g->clock;
        return &g->entries[g->last];
    }
    for (int i = 0; i < g->count; i++) {
        if (g->entries[i].ssrc == ssrc) {
            g->last = i;
            g->entries[i].used = g->clock;
            return &g->entries[i];
        }
    }
    int slot = g->count;
    if (g->count == g->capacity) {
        if (g->capacity >= GCM_MAX_SSRCS) {
            slot = 0;
            for (int i = 1; i < g->count; i++)
                if (g->entries[i].used < g->entries[slot].used)
                    slot = i;
        } else {
            int cap = g->capacity * 2;
            RocEntry *e = g->entries == g->inline_entries
                              ? malloc((size_t)cap * sizeof(RocEntry))
                              : realloc(g->entries, (size_t)cap * sizeof(RocEntry));
            if (e == NULL)
                return NULL;
            if (g->entries == g->inline_entries)
                memcpy(e, g->inline_entries, sizeof(g->inline_entries));
            g->entries = e;
            g->capacity = cap;
        }
    }
    if (slot == g->count)
        g->count++;
    g->entries[slot].ssrc = ssrc;
    g->entries[slot].index = 0;
    g->entries[slot].used = g->clock;
    g->last = slot;
    return &g->entries[slot];
}

/* RFC 3711 §3.3.1 / Appendix A: the packet index of seq s given the highest index sent so
 * far; advances the highest index when s is ahead of it. Until the highest seq passes 2^15
 * the ROC is taken as 0 (so an early late packet cannot guess ROC = -1), as libsrtp does. */
static uint64_t gcm_index(RocEntry *e, uint16_t s)
{
    uint64_t local = e->index;
    uint32_t roc = (uint32_t)(local >> 16);
    uint16_t local_seq = (uint16_t)local;
    uint64_t guess;
    if (local <= 0x8000) {
        guess = s;
    } else if (local_seq < 0x8000) {
        guess = (s - local_seq > 0x8000) ? ((uint64_t)(uint32_t)(roc - 1) << 16) | s
                                         : ((uint64_t)roc << 16) | s;
    } else {
        guess = (local_seq - 0x8000 > s) ? ((uint64_t)(uint32_t)(roc + 1) << 16) | s
                                         : ((uint64_t)roc << 16) | s;
    }
    if (guess > local)
        e->index = guess;
    return guess;
}

/* The protect_fn_t for GcmSender: rtp has room for GCM_TAG more bytes. 0 on success. */
static int gcm_protect(void *ctx, void *rtp, int *len)
{
    GcmObject *g = (GcmObject *)ctx;
    unsigned char *d = (unsigned char *)rtp;
    int n = *len;
    if (n < 12 || (d[0] & 0xC0) != 0x80)
        return 1;
    /* RFC 3550 §5.1 / §5.3.1: the header (the AAD, RFC 7714 §8.2) ends after the CSRCs and
     * the extension block; the rest, padding included, is encrypted. */
    int hlen = 12 + ((d[0] & 0x0F) << 2);
    if (d[0] & 0x10) {
        if (hlen + 4 > n)
            return 1;
        hlen += 4 + (((d[hlen + 2] << 8) | d[hlen + 3]) << 2);
    }
    if (hlen > n)
        return 1;
    uint32_t ssrc = ((uint32_t)d[8] << 24) | ((uint32_t)d[9] << 16) | ((uint32_t)d[10] << 8) |
                    d[11];
    RocEntry *e = gcm_entry(g, ssrc);
    if (e == NULL)
        return 1;
    uint64_t index = gcm_index(e, (uint16_t)((d[2] << 8) | d[3]));
    /* RFC 7714 §8.1: IV = (00 00 || SSRC || ROC || SEQ) XOR salt. */
    unsigned char iv[12] = {0, 0, d[8], d[9], d[10], d[11], (unsigned char)(index >> 40),
                            (unsigned char)(index >> 32), (unsigned char)(index >> 24),
                            (unsigned char)(index >> 16), d[2], d[3]};
    for (int i = 0; i < 12; i++)
        iv[i] ^= g->salt[i];
    int outl;
    int plen = n - hlen;
    if (EVP_EncryptInit_ex(g->evp, NULL, NULL, NULL, iv) != 1 ||
        EVP_EncryptUpdate(g->evp, NULL, &outl, d, hlen) != 1 ||
        (plen > 0 && EVP_EncryptUpdate(g->evp, d + hlen, &outl, d + hlen, plen) != 1) ||
        EVP_EncryptFinal_ex(g->evp, d + n, &outl) != 1)
        return 1;
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    /* The provider's parameter directly: EVP_CIPHER_CTX_ctrl would translate GET_TAG into
     * the same request at several times the cost. */
    OSSL_PARAM params[2] = {OSSL_PARAM_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, d + n, GCM_TAG),
                            OSSL_PARAM_END};
    if (EVP_CIPHER_CTX_get_params(g->evp, params) != 1)
        return 1;
#else
    if (EVP_CIPHER_CTX_ctrl(g->evp, EVP_CTRL_GCM_GET_TAG, GCM_TAG, d + n) != 1)
        return 1;
#endif
    *len = n + GCM_TAG; /* RFC 7714 §9.1: ciphertext || 16-byte tag */
    g->packets++;
    return 0;
}

static PyObject *gcm_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"key", "salt", "error", NULL};
    Py_buffer key, salt;
    PyObject *error = PyExc_ValueError;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "y*y*|O", kwlist, &key, &salt, &error))
        return NULL;
    GcmObject *self = NULL;
    if (!PyExceptionClass_Check(error)) {
        PyErr_SetString(PyExc_TypeError, "error must be an exception class");
        goto done;
    }
    if (key.len != 16 || salt.len != 12) {
        PyErr_Format(PyExc_ValueError,
                     "AEAD_AES_128_GCM needs a 16-byte session key and a 12-byte session salt, "
                     "got %zd and %zd bytes", key.len, salt.len);
        goto done;
    }
    self = (GcmObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        goto done;
    memcpy(self->salt, salt.buf, 12);
    self->error = Py_NewRef(error);
    self->fn = gcm_protect;
    self->ctx = self;
    self->capacity = GCM_INLINE_SSRCS;
    self->entries = self->inline_entries;
    self->evp = EVP_CIPHER_CTX_new();
    if (self->evp == NULL) {
        Py_CLEAR(self);
        PyErr_NoMemory();
        goto done;
    }
    if (EVP_EncryptInit_ex(self->evp, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(self->evp, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 ||
        EVP_EncryptInit_ex(self->evp, NULL, NULL, key.buf, NULL) != 1) {
        Py_CLEAR(self);
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL refused the AES-128-GCM key");
    }
done:
    PyBuffer_Release(&key);
    PyBuffer_Release(&salt);
    return (PyObject *)self;
}

static void gcm_dealloc(GcmObject *self)
{
    if (self->evp != NULL)
        EVP_CIPHER_CTX_free(self->evp);
    if (self->entries != self->inline_entries)
        free(self->entries);
    Py_XDECREF(self->error);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *gcm_py_protect(GcmObject *self, PyObject *arg)
{
    Py_buffer in;
    if (PyObject_GetBuffer(arg, &in, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *out = NULL;
    if (in.len > INT_MAX - GCM_TAG) {
        PyErr_SetString(PyExc_ValueError, "RTP packet too long");
        goto done;
    }
    out = PyBytes_FromStringAndSize(NULL, in.len + GCM_TAG);
    if (out == NULL)
        goto done;
    memcpy(PyBytes_AS_STRING(out), in.buf, (size_t)in.len);
    int len = (int)in.len;
    if (gcm_protect(self, PyBytes_AS_STRING(out), &len) != 0) {
        Py_CLEAR(out);
        PyErr_SetString(self->error, "RTP packet malformed (header or extension truncated)");
    }
done:
    PyBuffer_Release(&in);
    return out;
}

static PyObject *gcm_address(GcmObject *self, void *closure)
{
    return PyLong_FromVoidPtr(self);
}

static PyObject *gcm_ssrcs(GcmObject *self, void *closure)
{
    return PyLong_FromLong(self->count);
}

static PyMethodDef gcm_methods[] = {
    {"protect", (PyCFunction)gcm_py_protect, METH_O,
     "protect(packet: bytes) -> bytes: SRTP (RFC 7714) of one RTP packet"},
    {NULL},
};

static PyMemberDef gcm_members[] = {
    {"packets", T_LONGLONG, offsetof(GcmObject, packets), READONLY, "RTP packets protected"},
    {NULL},
};

static PyGetSetDef gcm_getset[] = {
    {"address", (getter)gcm_address, NULL,
     "ctx for GCM_PROTECT_FN and for DISPATCH_FN (valid while alive)", NULL},
    {"ssrcs", (getter)gcm_ssrcs, NULL, "SSRCs with rollover state", NULL},
    {NULL},
};

static PyTypeObject GcmType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub._speedups.GcmSender",
    .tp_basicsize = sizeof(GcmObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "GcmSender(key, salt, error=ValueError): SRTP AEAD_AES_128_GCM protect for "
              "outgoing RTP; protect() raises `error` on a malformed packet.",
    .tp_new = gcm_new,
    .tp_dealloc = (destructor)gcm_dealloc,
    .tp_methods = gcm_methods,
    .tp_members = gcm_members,
    .tp_getset = gcm_getset,
};
#endif /* HUBBUB_GCM */

static PyMethodDef methods[] = {
    {"protect_and_send", protect_and_send, METH_VARARGS,
     "protect_and_send(fd, protect_fn, items) -> (sent, errors, leftovers)"},
    {"rewrite", py_rewrite, METH_VARARGS,
     "rewrite(data, pt, seq, ts, ssrc, ext_map, mid_id, mid) -> bytes | None (None: use the "
     "Python slow path)"},
    {"fanout", (PyCFunction)(void (*)(void))fanout, METH_FASTCALL,
     "fanout(states, data, seq, ts, length, now) -> None | (slow owners, leftovers)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub._speedups",
    "The forward path in C (optional): rewrite, cache, SRTP protect and sendmmsg per fan-out.",
    -1, methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&CacheType) < 0 || PyType_Ready(&TargetType) < 0 ||
        PyType_Ready(&StateType) < 0 || PyType_Ready(&ProtectorType) < 0)
        return NULL;
#ifdef HUBBUB_GCM
    if (PyType_Ready(&GcmType) < 0)
        return NULL;
#endif
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddObjectRef(m, "PacketCache", (PyObject *)&CacheType) < 0 ||
        PyModule_AddObjectRef(m, "Target", (PyObject *)&TargetType) < 0 ||
        PyModule_AddObjectRef(m, "DownState", (PyObject *)&StateType) < 0 ||
        PyModule_AddObjectRef(m, "Protector", (PyObject *)&ProtectorType) < 0 ||
        PyModule_AddObject(m, "DISPATCH_FN", PyLong_FromVoidPtr((void *)dispatch_protect)) < 0)
        goto fail;
#ifdef HUBBUB_GCM
    if (PyModule_AddObjectRef(m, "GcmSender", (PyObject *)&GcmType) < 0 ||
        PyModule_AddObject(m, "GCM_PROTECT_FN", PyLong_FromVoidPtr((void *)gcm_protect)) < 0 ||
        PyModule_AddObjectRef(m, "GCM", Py_True) < 0)
        goto fail;
#else
    if (PyModule_AddObjectRef(m, "GCM", Py_False) < 0)
        goto fail;
#endif
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
