/*
 * fake_etnaviv.c - a test-only stand-in for the etnaviv kernel driver, loaded with LD_PRELOAD.
 *
 * It lets the generated C runtime run on a machine without an NPU: open() of the render nodes listed in
 * FAKE_ETNAVIV_NODES ("PATH=DRIVER,PATH=DRIVER", DRIVER "etnaviv" or another name) returns a descriptor
 * that this library answers for, like the kernel does for the A311D's NPU:
 *   DRM_VERSION, GET_PARAM (one core, pipe 0, with the identity compiled in with -DFAKE_*), GEM_NEW (buffers
 *   backed by memfds), GEM_INFO + mmap (maps the memfd), GEM_CPU_PREP/FINI, GEM_SUBMIT (softpin only, no
 *   relocations) and WAIT_FENCE.
 * A submit hands the buffers (their memfds, once) and the command stream to a Python helper process
 * running npuc's simulator (FAKE_ETNAVIV_PYTHON FAKE_ETNAVIV_SERVER <socket fd>), started at the first
 * submit; the helper works on the very memory the runtime mapped, so nothing is copied.  A simulator
 * error fails the submit with EINVAL and prints "fake-etnaviv: <message>" on stderr.
 *
 * FAKE_ETNAVIV_TRACE=1 reports every open of a faked node; FAKE_ETNAVIV_SOFTPIN_START overrides the
 * softpin start (~0: softpin unsupported); FAKE_ETNAVIV_FAIL_SUBMIT=1 refuses every submit.
 *
 * The structures are decoded with the runtime's generated npu_format.h, whose layouts the tests pin to
 * the numbers of the UAPI documentation.  Anything the kernel would refuse is refused with its errno and
 * a "fake-etnaviv:" line, so a test sees protocol mistakes.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "npu_format.h"

#define MAX_FILES 8
#define MAX_BOS 4096
#define PAGE 4096u
#define MMAP_OFFSET_UNIT 0x100000000ull /* GEM_INFO offsets: handle * this */

enum { OP_NEW = 1, OP_SUBMIT = 2 };

struct bo {
    uint32_t handle;
    uint64_t size;
    int memfd;
    int sent; /* the helper has it */
};

struct file {
    int used;
    int fd;
    int etnaviv;
    char driver[32];
    struct bo bos[MAX_BOS];
    uint32_t n_bos;
    uint32_t fence;
    pid_t helper;
    int sock;
};

static struct file files[MAX_FILES];

extern char **environ;

static void vnote(const char *fmt, va_list ap)
{
    fputs("fake-etnaviv: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
}

/* Fails a call as the kernel would, saying why on stderr. */
static int refuse(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int refuse(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vnote(fmt, ap);
    va_end(ap);
    errno = err;
    return -1;
}

static void *real(const char *name)
{
    void *f = dlsym(RTLD_NEXT, name);
    if (!f) {
        note("cannot find the real %s", name);
        abort();
    }
    return f;
}

static struct file *file_of(int fd)
{
    for (int i = 0; i < MAX_FILES; i++)
        if (files[i].used && files[i].fd == fd)
            return &files[i];
    return NULL;
}

/* The driver FAKE_ETNAVIV_NODES gives `path`, copied into `driver`; 0 when the path is not faked. */
static int faked_node(const char *path, char *driver, size_t size)
{
    const char *nodes = getenv("FAKE_ETNAVIV_NODES");
    size_t plen = strlen(path);
    while (nodes && *nodes) {
        const char *end = strchr(nodes, ','), *eq = strchr(nodes, '=');
        end = end ? end : nodes + strlen(nodes);
        if (eq && eq < end && (size_t)(eq - nodes) == plen && strncmp(nodes, path, plen) == 0) {
            snprintf(driver, size, "%.*s", (int)(end - eq - 1), eq + 1);
            return 1;
        }
        nodes = *end ? end + 1 : end;
    }
    return 0;
}

static int open_fake(const char *path, int flags)
{
    char driver[32];
    if (!faked_node(path, driver, sizeof driver))
        return -2;
    int fd = memfd_create("fake-etnaviv", (flags & O_CLOEXEC) ? MFD_CLOEXEC : 0);
    if (fd < 0)
        return -1;
    if (getenv("FAKE_ETNAVIV_TRACE"))
        note("open %s (%s)", path, driver);
    for (int i = 0; i < MAX_FILES; i++)
        if (!files[i].used) {
            memset(&files[i], 0, sizeof files[i]);
            files[i].used = 1;
            files[i].fd = fd;
            files[i].sock = -1;
            files[i].etnaviv = strcmp(driver, "etnaviv") == 0;
            snprintf(files[i].driver, sizeof files[i].driver, "%s", driver);
            return fd;
        }
    close(fd);
    errno = EMFILE;
    return -1;
}

static int open_common(const char *name, int dirfd, const char *path, int flags, mode_t mode)
{
    int fd = open_fake(path, flags);
    if (fd != -2)
        return fd;
    if (dirfd == -1) {
        int (*next)(const char *, int, ...) = real(name);
        return next(path, flags, mode);
    }
    int (*next)(int, const char *, int, ...) = real(name);
    return next(dirfd, path, flags, mode);
}

#define MODE_ARG(flags, mode)                                                                                 \
    do {                                                                                                      \
        if ((flags) & (O_CREAT | O_TMPFILE)) {                                                                \
            va_list ap;                                                                                       \
            va_start(ap, flags);                                                                              \
            mode = va_arg(ap, mode_t);                                                                        \
            va_end(ap);                                                                                       \
        }                                                                                                     \
    } while (0)

int open(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_common("open", -1, path, flags, mode);
}

int open64(const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_common("open64", -1, path, flags, mode);
}

int openat(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_common("openat", dirfd, path, flags, mode);
}

int openat64(int dirfd, const char *path, int flags, ...)
{
    mode_t mode = 0;
    MODE_ARG(flags, mode);
    return open_common("openat64", dirfd, path, flags, mode);
}

int close(int fd)
{
    int (*next)(int) = real("close");
    struct file *f = file_of(fd);
    if (f) {
        for (uint32_t i = 0; i < f->n_bos; i++)
            next(f->bos[i].memfd);
        if (f->sock >= 0) {
            next(f->sock);
            waitpid(f->helper, NULL, 0);
        }
        f->used = 0;
    }
    return next(fd);
}

static struct bo *bo_of(struct file *f, uint32_t handle)
{
    return handle >= 1 && handle <= f->n_bos ? &f->bos[handle - 1] : NULL;
}

static void *mmap_common(const char *name, void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    void *(*next)(void *, size_t, int, int, int, off_t) = real(name);
    struct file *f = file_of(fd);
    if (!f)
        return next(addr, len, prot, flags, fd, offset);
    struct bo *bo = offset > 0 && (uint64_t)offset % MMAP_OFFSET_UNIT == 0
                    ? bo_of(f, (uint32_t)((uint64_t)offset / MMAP_OFFSET_UNIT)) : NULL;
    if (!bo || len == 0 || len > (bo->size + PAGE - 1) / PAGE * PAGE || !(flags & MAP_SHARED)) {
        refuse(EINVAL, "mmap of %zu bytes at offset 0x%llx matches no buffer", len, (unsigned long long)offset);
        return MAP_FAILED;
    }
    return next(addr, len, prot, flags, bo->memfd, 0);
}

void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    return mmap_common("mmap", addr, len, prot, flags, fd, offset);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t offset)
{
    return mmap_common("mmap64", addr, len, prot, flags, fd, offset);
}

/* ---- the simulator helper ---- */

/* Moves exactly `n` bytes to (`writing`) or from the helper; -1 when it is gone. */
static int transfer(int fd, const void *data, size_t n, int writing)
{
    uint8_t *p = (uint8_t *)(uintptr_t)data;
    while (n) {
        ssize_t k = writing ? write(fd, p, n) : read(fd, p, n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

static int start_helper(struct file *f)
{
    const char *python = getenv("FAKE_ETNAVIV_PYTHON"), *server = getenv("FAKE_ETNAVIV_SERVER");
    int sv[2];
    if (!python || !server)
        return refuse(EINVAL, "FAKE_ETNAVIV_PYTHON and FAKE_ETNAVIV_SERVER must name the simulator helper");
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv))
        return refuse(errno, "socketpair: %s", strerror(errno));
    fcntl(sv[0], F_SETFD, FD_CLOEXEC);
    pid_t pid = fork();
    if (pid < 0)
        return refuse(errno, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* The helper must not load this library (or a sanitizer runtime) again. */
        static char *env[256];
        int n = 0;
        for (char **e = environ; *e && n < 255; e++)
            if (strncmp(*e, "LD_PRELOAD=", 11) != 0)
                env[n++] = *e;
        env[n] = NULL;
        char fdarg[16];
        snprintf(fdarg, sizeof fdarg, "%d", sv[1]);
        execve(python, (char *[]){ (char *)python, (char *)server, fdarg, NULL }, env);
        _exit(127);
    }
    int (*next_close)(int) = real("close");
    next_close(sv[1]);
    f->helper = pid;
    f->sock = sv[0];
    return 0;
}

/* Gives the helper every buffer it does not have yet (the memfd travels with the message). */
static int send_new_buffers(struct file *f)
{
    for (uint32_t i = 0; i < f->n_bos; i++) {
        struct bo *bo = &f->bos[i];
        if (bo->sent)
            continue;
        uint32_t msg[6] = { OP_NEW, 16, bo->handle, 0, (uint32_t)bo->size, (uint32_t)(bo->size >> 32) };
        char control[CMSG_SPACE(sizeof(int))];
        struct iovec iov = { msg, sizeof msg };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control,
                             .msg_controllen = sizeof control };
        struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(c), &bo->memfd, sizeof(int));
        if (sendmsg(f->sock, &mh, 0) != (ssize_t)sizeof msg)
            return refuse(EIO, "the simulator helper is gone");
        bo->sent = 1;
    }
    return 0;
}

static int simulate(struct file *f, const uint32_t *bos, uint32_t nr_bos, const void *stream, uint32_t size)
{
    if ((f->sock < 0 && start_helper(f)) || send_new_buffers(f))
        return -1;
    uint32_t head[4] = { OP_SUBMIT, 8 + 16 * nr_bos + size, nr_bos, size };
    if (transfer(f->sock, head, sizeof head, 1))
        return refuse(EIO, "the simulator helper is gone");
    for (uint32_t i = 0; i < nr_bos; i++) {
        struct drm_etnaviv_gem_submit_bo bo;
        drm_etnaviv_gem_submit_bo_decode(bos + i * DRM_ETNAVIV_GEM_SUBMIT_BO_WORDS, &bo);
        uint32_t rec[4] = { bo.handle, bo.flags, (uint32_t)bo.presumed, (uint32_t)(bo.presumed >> 32) };
        if (transfer(f->sock, rec, sizeof rec, 1))
            return refuse(EIO, "the simulator helper is gone");
    }
    uint32_t reply[2];
    if (transfer(f->sock, stream, size, 1) || transfer(f->sock, reply, sizeof reply, 0))
        return refuse(EIO, "the simulator helper is gone");
    char message[4096];
    if (reply[1] >= sizeof message || transfer(f->sock, message, reply[1], 0))
        return refuse(EIO, "the simulator helper is gone");
    message[reply[1]] = '\0';
    return reply[0] ? refuse(EINVAL, "%s", message) : 0;
}

/* ---- the ioctls ---- */

/* The environment variable `name` as a number, else the value compiled in (another NPU's core). */
static uint64_t env_or(const char *name, uint64_t fallback)
{
    const char *s = getenv(name);
    return s ? strtoull(s, NULL, 0) : fallback;
}

static uint64_t param_value(uint32_t param, int *known)
{
    *known = 1;
    switch (param) {
    case ETNA_PARAM_MODEL: return env_or("FAKE_ETNAVIV_MODEL", FAKE_MODEL);
    case ETNA_PARAM_REVISION: return env_or("FAKE_ETNAVIV_REVISION", FAKE_REVISION);
    case ETNA_PARAM_PRODUCT_ID: return env_or("FAKE_ETNAVIV_PRODUCT_ID", FAKE_PRODUCT_ID);
    case ETNA_PARAM_CUSTOMER_ID: return env_or("FAKE_ETNAVIV_CUSTOMER_ID", FAKE_CUSTOMER_ID);
    case ETNA_PARAM_ECO_ID: return env_or("FAKE_ETNAVIV_ECO_ID", FAKE_ECO_ID);
    case ETNA_PARAM_SOFTPIN_START_ADDR: return env_or("FAKE_ETNAVIV_SOFTPIN_START", FAKE_SOFTPIN_START);
    default: *known = 0; return 0;
    }
}

static int do_version(struct file *f, uint32_t *w)
{
    struct drm_version v;
    drm_version_decode(w, &v);
    size_t len = strlen(f->driver);
    if (v.name && v.name_len)
        memcpy((void *)(uintptr_t)v.name, f->driver, v.name_len < len ? v.name_len : len);
    v.name_len = len;
    v.date_len = 0;
    v.desc_len = 0;
    v.version_major = f->etnaviv ? FAKE_DRIVER_MAJOR : 1;
    v.version_minor = f->etnaviv ? FAKE_DRIVER_MINOR : 0;
    v.version_patchlevel = 0;
    drm_version_encode(&v, w);
    return 0;
}

static int do_submit(struct file *f, uint32_t *w)
{
    struct drm_etnaviv_gem_submit s;
    drm_etnaviv_gem_submit_decode(w, &s);
    if (s.pipe != 0)
        return refuse(s.pipe < ETNA_MAX_PIPES ? ENXIO : EINVAL, "submit to pipe %u", s.pipe);
    if (s.exec_state != ETNA_EXEC_STATE_3D)
        return refuse(EINVAL, "submit with exec state %u (an NPU submit uses 3D)", s.exec_state);
    if (!(s.flags & ETNA_SUBMIT_SOFTPIN) || s.nr_relocs)
        return refuse(EINVAL, "submit without softpin or with %u relocations", s.nr_relocs);
    if (s.flags & ~(ETNA_SUBMIT_NO_IMPLICIT | ETNA_SUBMIT_FENCE_FD_IN | ETNA_SUBMIT_FENCE_FD_OUT | ETNA_SUBMIT_SOFTPIN))
        return refuse(EINVAL, "submit flags 0x%x", s.flags);
    if (s.stream_size % 4 || s.pad || s.nr_pmrs)
        return refuse(EINVAL, "stream of %u bytes, pad %u, %u perf monitors", s.stream_size, s.pad, s.nr_pmrs);
    if (getenv("FAKE_ETNAVIV_FAIL_SUBMIT"))
        return refuse(EINVAL, "refusing the submit as asked (FAKE_ETNAVIV_FAIL_SUBMIT)");
    const uint32_t *bos = (const uint32_t *)(uintptr_t)s.bos;
    for (uint32_t i = 0; i < s.nr_bos; i++) {
        struct drm_etnaviv_gem_submit_bo bo;
        drm_etnaviv_gem_submit_bo_decode(bos + i * DRM_ETNAVIV_GEM_SUBMIT_BO_WORDS, &bo);
        if (bo.flags & ~(ETNA_SUBMIT_BO_READ | ETNA_SUBMIT_BO_WRITE))
            return refuse(EINVAL, "submit buffer %u has flags 0x%x", i, bo.flags);
        if (!bo_of(f, bo.handle))
            return refuse(ENOENT, "submit buffer %u has unknown handle %u", i, bo.handle);
    }
    if (simulate(f, bos, s.nr_bos, (const void *)(uintptr_t)s.stream, s.stream_size))
        return -1;
    s.fence = ++f->fence;
    drm_etnaviv_gem_submit_encode(&s, w);
    return 0;
}

static int handle_ioctl(struct file *f, unsigned long request, uint32_t *w)
{
    if (request == NPU_IOCTL_VERSION)
        return do_version(f, w);
    if (!f->etnaviv)
        return refuse(EINVAL, "ioctl 0x%lx sent to a %s node", request, f->driver);
    switch (request) {
    case NPU_IOCTL_ETNAVIV_GET_PARAM: {
        struct drm_etnaviv_param p;
        int known;
        drm_etnaviv_param_decode(w, &p);
        if (p.pipe >= ETNA_MAX_PIPES)
            return refuse(EINVAL, "GET_PARAM of pipe %u", p.pipe);
        if (p.pipe != 0) {
            errno = ENXIO; /* no such core: the runtime probes for it, this is no mistake */
            return -1;
        }
        p.value = param_value(p.param, &known);
        if (!known)
            return refuse(EINVAL, "GET_PARAM of unknown parameter 0x%x", p.param);
        drm_etnaviv_param_encode(&p, w);
        return 0;
    }
    case NPU_IOCTL_ETNAVIV_GEM_NEW: {
        struct drm_etnaviv_gem_new g;
        drm_etnaviv_gem_new_decode(w, &g);
        uint32_t caching = g.flags & (ETNA_BO_CACHED | ETNA_BO_WC | ETNA_BO_UNCACHED);
        if (g.size == 0 || (g.flags & ~(ETNA_BO_CACHED | ETNA_BO_WC | ETNA_BO_UNCACHED)) || !caching
            || (caching & (caching - 1)))
            return refuse(EINVAL, "GEM_NEW of %llu bytes with flags 0x%x", (unsigned long long)g.size, g.flags);
        if (f->n_bos == MAX_BOS)
            return refuse(ENOMEM, "too many buffers");
        struct bo *bo = &f->bos[f->n_bos];
        bo->memfd = memfd_create("fake-etnaviv-bo", MFD_CLOEXEC);
        if (bo->memfd < 0 || ftruncate(bo->memfd, (off_t)((g.size + PAGE - 1) / PAGE * PAGE)))
            return refuse(ENOMEM, "cannot back a buffer of %llu bytes", (unsigned long long)g.size);
        bo->size = g.size;
        bo->handle = g.handle = ++f->n_bos;
        bo->sent = 0;
        drm_etnaviv_gem_new_encode(&g, w);
        return 0;
    }
    case NPU_IOCTL_ETNAVIV_GEM_INFO: {
        struct drm_etnaviv_gem_info g;
        drm_etnaviv_gem_info_decode(w, &g);
        if (g.pad)
            return refuse(EINVAL, "GEM_INFO with pad %u", g.pad);
        if (!bo_of(f, g.handle))
            return refuse(ENOENT, "GEM_INFO of unknown handle %u", g.handle);
        g.offset = g.handle * MMAP_OFFSET_UNIT;
        drm_etnaviv_gem_info_encode(&g, w);
        return 0;
    }
    case NPU_IOCTL_ETNAVIV_GEM_CPU_PREP: {
        struct drm_etnaviv_gem_cpu_prep p;
        drm_etnaviv_gem_cpu_prep_decode(w, &p);
        if (p.op & ~(ETNA_PREP_READ | ETNA_PREP_WRITE | ETNA_PREP_NOSYNC))
            return refuse(EINVAL, "CPU_PREP with op 0x%x", p.op);
        return bo_of(f, p.handle) ? 0 : refuse(ENOENT, "CPU_PREP of unknown handle %u", p.handle);
    }
    case NPU_IOCTL_ETNAVIV_GEM_CPU_FINI: {
        struct drm_etnaviv_gem_cpu_fini c;
        drm_etnaviv_gem_cpu_fini_decode(w, &c);
        if (c.flags)
            return refuse(EINVAL, "CPU_FINI with flags 0x%x", c.flags);
        return bo_of(f, c.handle) ? 0 : refuse(ENOENT, "CPU_FINI of unknown handle %u", c.handle);
    }
    case NPU_IOCTL_ETNAVIV_GEM_SUBMIT:
        return do_submit(f, w);
    case NPU_IOCTL_ETNAVIV_WAIT_FENCE: {
        struct drm_etnaviv_wait_fence wf;
        drm_etnaviv_wait_fence_decode(w, &wf);
        if (wf.flags & ~ETNA_WAIT_NONBLOCK || wf.pad)
            return refuse(EINVAL, "WAIT_FENCE with flags 0x%x", wf.flags);
        if (wf.pipe != 0)
            return refuse(wf.pipe < ETNA_MAX_PIPES ? ENXIO : EINVAL, "WAIT_FENCE on pipe %u", wf.pipe);
        if (wf.fence == 0 || wf.fence > f->fence)
            return refuse(EINVAL, "WAIT_FENCE on fence %u, but only %u were issued", wf.fence, f->fence);
        return 0; /* the simulator finished the submit before it returned */
    }
    default:
        return refuse(EINVAL, "unknown ioctl 0x%lx", request);
    }
}

int ioctl(int fd, unsigned long request, ...)
{
    va_list ap;
    va_start(ap, request);
    void *arg = va_arg(ap, void *);
    va_end(ap);
    struct file *f = file_of(fd);
    if (!f) {
        int (*next)(int, unsigned long, ...) = real("ioctl");
        return next(fd, request, arg);
    }
    return handle_ioctl(f, request, arg);
}
