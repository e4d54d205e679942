/* hubbub._speedups: SRTP-protect a batch of RTP packets and send them with sendmmsg(2).
 *
 * The forward path's measured cost on loopback is one sendmsg syscall per packet plus the
 * pylibsrtp call; this moves both out of Python: one call per incoming packet's fan-out,
 * libsrtp's srtp_protect reached through the function pointer pylibsrtp's cffi module
 * exposes (no link-time dependency on libsrtp), one sendmmsg per 64 datagrams.
 *
 * protect_and_send(fd, protect_fn, items) -> (sent, errors, leftovers)
 *   items: list of (srtp_t address: int, plain RTP: bytes, sockaddr: bytes, owner: object)
 *   leftovers: [(protected bytes, index in items)] the kernel did not take (EAGAIN...);
 *   the caller sends them through its event loop so nothing is dropped silently.
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

static PyMethodDef methods[] = {
    {"protect_and_send", protect_and_send, METH_VARARGS,
     "protect_and_send(fd, protect_fn, items) -> (sent, errors, leftovers)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hubbub._speedups",
    "SRTP protect + sendmmsg batches for the forward path (optional, see media/batch.py).", -1,
    methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    return PyModule_Create(&module);
}
