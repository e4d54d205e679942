/* hubbub.client.bots._drain: receive for thousands of bot sockets in one call (optional).
 *
 * A load generator that must take in 150,000 datagrams a second on one core cannot spend a
 * Python callback on each. Drainer owns an epoll set of bot sockets; the event loop watches
 * the epoll fd itself (it is pollable) and calls drain() when any member is readable. Per
 * readable socket: recvmmsg(2) until EAGAIN, with SO_TIMESTAMPNS kernel arrival times.
 *
 * Member kinds:
 *   counting:     SRTP packets (RFC 7983 §7 first byte 128..191, RFC 5761 §4 not RTCP) are
 *                 counted per SSRC from the clear header: packets and sequence gaps. Nothing
 *                 is decrypted. Everything else (STUN, DTLS, RTCP) goes back to Python.
 *   pass-through: every datagram goes back to Python with its kernel arrival time.
 *
 * A member is either watched (in the epoll set) or polled: drain() then calls recvmmsg on it
 * every time, ready or not. A polled socket has no waiter at all, so the sender's kernel does
 * not run an epoll callback for each datagram it delivers (on loopback that work is charged to
 * the sending process, i.e. to the server under test).
 *
 * Drainer() ; .fileno() ; .add(fd, counting, watch=True) -> slot ; .remove(slot)
 * .drain() -> [(slot, datagram bytes, arrival ns CLOCK_REALTIME)]
 * .counts(slot) -> (packets, lost) ; .total() -> (packets, lost) over counting members
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BATCH 32
#define MAX_DATAGRAM 2048
#define EVENTS 256
#define SSRCS 8
#define MAX_ROUNDS 64

typedef struct {
    uint32_t ssrc;
    uint16_t last_seq;
    uint8_t used;
    uint64_t packets;
    int64_t lost;
} SsrcCount;

typedef struct {
    int fd;          /* -1 once removed */
    int counting;
    int watched;
    SsrcCount ssrcs[SSRCS];
    uint64_t overflow; /* packets of SSRCs beyond SSRCS (counted, no gaps) */
} Member;

typedef struct {
    PyObject_HEAD
    int epfd;
    Member *members;
    Py_ssize_t count, capacity;
    unsigned char buffers[BATCH][MAX_DATAGRAM];
    struct mmsghdr msgs[BATCH];
    struct iovec iovs[BATCH];
    char controls[BATCH][CMSG_SPACE(sizeof(struct timespec))];
} Drainer;

static int drainer_init(Drainer *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "", kwlist))
        return -1;
    if (self->epfd > 0)
        close(self->epfd);
    self->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (self->epfd < 0) {
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

static void drainer_dealloc(Drainer *self)
{
    if (self->epfd > 0)
        close(self->epfd);
    PyMem_Free(self->members);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *drainer_fileno(Drainer *self, PyObject *unused)
{
    return PyLong_FromLong(self->epfd);
}

static PyObject *drainer_add(Drainer *self, PyObject *args)
{
    int fd, counting, watch = 1;
    if (!PyArg_ParseTuple(args, "ip|p", &fd, &counting, &watch))
        return NULL;
    if (self->count == self->capacity) {
        Py_ssize_t capacity = self->capacity ? self->capacity * 2 : 64;
        Member *grown = PyMem_Realloc(self->members, (size_t)capacity * sizeof(Member));
        if (grown == NULL)
            return PyErr_NoMemory();
        self->members = grown;
        self->capacity = capacity;
    }
    int on = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof(on)) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Py_ssize_t slot = self->count;
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)slot};
    if (watch && epoll_ctl(self->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    Member *m = &self->members[slot];
    memset(m, 0, sizeof(*m));
    m->fd = fd;
    m->counting = counting;
    m->watched = watch;
    self->count++;
    return PyLong_FromSsize_t(slot);
}

static Member *member(Drainer *self, Py_ssize_t slot)
{
    if (slot < 0 || slot >= self->count) {
        PyErr_Format(PyExc_IndexError, "no member in slot %zd", slot);
        return NULL;
    }
    return &self->members[slot];
}

static PyObject *drainer_remove(Drainer *self, PyObject *arg)
{
    Member *m = member(self, PyLong_AsSsize_t(arg));
    if (m == NULL)
        return NULL;
    if (m->fd >= 0) {
        /* The socket may already be closed (then the kernel dropped it from the set). */
        if (m->watched)
            epoll_ctl(self->epfd, EPOLL_CTL_DEL, m->fd, NULL);
        m->fd = -1;
    }
    Py_RETURN_NONE;
}

/* Like CountingPeer in Python: a forward jump of n counts n - 1 lost; a late packet (backward
 * jump) is only counted; a repeat of the last one counts as received and gives a loss back
 * (expected minus received, RFC 3550 §A.3, without reordering repair). */
static void count_rtp(Member *m, const unsigned char *p)
{
    uint16_t seq = (uint16_t)(p[2] << 8 | p[3]);
    uint32_t ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    for (int i = 0; i < SSRCS; i++) {
        SsrcCount *s = &m->ssrcs[i];
        if (!s->used) {
            s->used = 1;
            s->ssrc = ssrc;
            s->last_seq = seq;
            s->packets = 1;
            return;
        }
        if (s->ssrc == ssrc) {
            uint16_t gap = (uint16_t)(seq - s->last_seq);
            s->packets++;
            if (gap < 0x8000) {
                s->last_seq = seq;
                s->lost += (int64_t)gap - 1;
            }
            return;
        }
    }
    m->overflow++;
}

static int64_t arrival_ns(struct msghdr *hdr)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(hdr); c != NULL; c = CMSG_NXTHDR(hdr, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            memcpy(&ts, CMSG_DATA(c), sizeof(ts));
            return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
        }
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

/* recvmmsg until EAGAIN; returns -1 with a Python error set on failure to build results. */
static int drain_member(Drainer *self, Py_ssize_t slot, PyObject *out)
{
    Member *m = &self->members[slot];
    for (;;) {
        for (int i = 0; i < BATCH; i++) {
            self->iovs[i].iov_base = self->buffers[i];
            self->iovs[i].iov_len = MAX_DATAGRAM;
            struct msghdr *h = &self->msgs[i].msg_hdr;
            memset(h, 0, sizeof(*h));
            h->msg_iov = &self->iovs[i];
            h->msg_iovlen = 1;
            h->msg_control = self->controls[i];
            h->msg_controllen = sizeof(self->controls[i]);
        }
        int n = recvmmsg(m->fd, self->msgs, BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return 0; /* EAGAIN, or an ICMP error queued on the socket: nothing more now */
        }
        for (int i = 0; i < n; i++) {
            const unsigned char *p = self->buffers[i];
            unsigned int len = self->msgs[i].msg_len;
            if (m->counting && len > 12 && p[0] > 127 && p[0] < 192 && !(p[1] > 191 && p[1] < 224)) {
                count_rtp(m, p);
                continue;
            }
            PyObject *item = Py_BuildValue("(ny#L)", slot, (const char *)p, (Py_ssize_t)len,
                                           (long long)arrival_ns(&self->msgs[i].msg_hdr));
            if (item == NULL || PyList_Append(out, item) < 0) {
                Py_XDECREF(item);
                return -1;
            }
            Py_DECREF(item);
        }
        if (n < BATCH)
            return 0;
    }
}

static PyObject *drainer_drain(Drainer *self, PyObject *unused)
{
    PyObject *out = PyList_New(0);
    if (out == NULL)
        return NULL;
    for (Py_ssize_t slot = 0; slot < self->count; slot++) {
        if (self->members[slot].fd >= 0 && !self->members[slot].watched &&
            drain_member(self, slot, out) < 0) {
            Py_DECREF(out);
            return NULL;
        }
    }
    struct epoll_event events[EVENTS];
    for (int round = 0; round < MAX_ROUNDS; round++) {
        int n = epoll_wait(self->epfd, events, EVENTS, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            Py_ssize_t slot = (Py_ssize_t)events[i].data.u64;
            if (slot >= self->count || self->members[slot].fd < 0)
                continue;
            if (drain_member(self, slot, out) < 0) {
                Py_DECREF(out);
                return NULL;
            }
        }
        if (n < EVENTS)
            break;
    }
    return out;
}

static void sums(const Member *m, uint64_t *packets, int64_t *lost)
{
    *packets += m->overflow;
    for (int i = 0; i < SSRCS && m->ssrcs[i].used; i++) {
        *packets += m->ssrcs[i].packets;
        *lost += m->ssrcs[i].lost;
    }
}

static PyObject *drainer_counts(Drainer *self, PyObject *arg)
{
    Member *m = member(self, PyLong_AsSsize_t(arg));
    if (m == NULL)
        return NULL;
    uint64_t packets = 0;
    int64_t lost = 0;
    sums(m, &packets, &lost);
    return Py_BuildValue("(KL)", (unsigned long long)packets, (long long)lost);
}

static PyObject *drainer_total(Drainer *self, PyObject *unused)
{
    uint64_t packets = 0;
    int64_t lost = 0;
    for (Py_ssize_t i = 0; i < self->count; i++)
        if (self->members[i].counting)
            sums(&self->members[i], &packets, &lost);
    return Py_BuildValue("(KL)", (unsigned long long)packets, (long long)lost);
}

static PyMethodDef drainer_methods[] = {
    {"fileno", (PyCFunction)drainer_fileno, METH_NOARGS, "The epoll fd (pollable)."},
    {"add", (PyCFunction)drainer_add, METH_VARARGS,
     "add(fd, counting, watch=True) -> slot: watch (epoll) or poll a socket; SO_TIMESTAMPNS "
     "is switched on."},
    {"remove", (PyCFunction)drainer_remove, METH_O, "remove(slot): stop watching it."},
    {"drain", (PyCFunction)drainer_drain, METH_NOARGS,
     "drain() -> [(slot, datagram, arrival ns)]: read every ready member until EAGAIN."},
    {"counts", (PyCFunction)drainer_counts, METH_O, "counts(slot) -> (packets, lost)."},
    {"total", (PyCFunction)drainer_total, METH_NOARGS,
     "total() -> (packets, lost) over the counting members."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject DrainerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "hubbub.client.bots._drain.Drainer",
    .tp_basicsize = sizeof(Drainer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)drainer_init,
    .tp_dealloc = (destructor)drainer_dealloc,
    .tp_methods = drainer_methods,
    .tp_doc = "An epoll set of bot sockets drained with recvmmsg in one call.",
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub.client.bots._drain",
    "Batch receive for load-generator bots (optional C; see drain.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit__drain(void)
{
    if (PyType_Ready(&DrainerType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&DrainerType);
    if (PyModule_AddObject(m, "Drainer", (PyObject *)&DrainerType) < 0) {
        Py_DECREF(&DrainerType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
