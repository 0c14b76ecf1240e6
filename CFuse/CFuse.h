// libfuse3's low-level API for Swift. Only what Swift cannot import directly is wrapped here,
// in static inline CFuse_… functions.
#ifndef POCKET_CFUSE_H
#define POCKET_CFUSE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

/// The multithreaded loop (the function is a version-selecting macro): up to `max_threads`
/// workers, each with its own /dev/fuse descriptor.
static inline int CFuse_session_loop_mt(struct fuse_session *session, unsigned int max_threads) {
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    if (config == NULL) return -ENOMEM;
    fuse_loop_cfg_set_max_threads(config, max_threads);
    fuse_loop_cfg_set_clone_fd(config, 1);
    int result = fuse_session_loop_mt(session, config);
    fuse_loop_cfg_destroy(config);
    return result;
}

/// Answers the kernel's INIT request through libfuse, adding `extra` to the flags of libfuse's
/// reply when the kernel offered them: libfuse 3.14 cannot ask for newer flags
/// (FUSE_HANDLE_KILLPRIV_V2). For that one reply, the session's descriptor is pointed at a
/// socket pair, the reply is read back and amended, then written to /dev/fuse. Call after
/// fuse_session_mount and before the loop. Returns 0, or a negative errno.
static inline int CFuse_session_init_adding(struct fuse_session *session, uint64_t extra) {
    int fd = fuse_session_fd(session);
    char request[16 * 1024];  // at least FUSE_MIN_READ_BUFFER; INIT is a few dozen bytes
    ssize_t size;
    do { size = read(fd, request, sizeof request); } while (size < 0 && errno == EINTR);
    if (size < (ssize_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_init_in))) return -EIO;
    struct fuse_in_header *header = (struct fuse_in_header *)request;
    struct fuse_init_in *offer = (struct fuse_init_in *)(request + sizeof *header);
    if (header->opcode != FUSE_INIT) return -EPROTO;
    uint64_t offered = offer->flags;
    if (offer->flags & FUSE_INIT_EXT) offered |= (uint64_t)offer->flags2 << 32;
    struct fuse_buf buffer = {.size = (size_t)size, .mem = request};
    if ((offered & extra) == 0) {
        fuse_session_process_buf(session, &buffer);
        return 0;
    }
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) != 0) return -errno;
    int device = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (device < 0 || dup3(pair[0], fd, O_CLOEXEC) < 0) {
        int error = -errno;
        if (device >= 0) close(device);
        close(pair[0]);
        close(pair[1]);
        return error;
    }
    fuse_session_process_buf(session, &buffer);
    char reply[1024];
    ssize_t length = recv(pair[1], reply, sizeof reply, MSG_DONTWAIT);
    dup3(device, fd, O_CLOEXEC);
    close(device);
    close(pair[0]);
    close(pair[1]);
    if (length < (ssize_t)sizeof(struct fuse_out_header)) return -EIO;
    struct fuse_out_header *out = (struct fuse_out_header *)reply;
    if (out->error == 0 && length >= (ssize_t)(sizeof *out + offsetof(struct fuse_init_out, flags2) + 4)) {
        struct fuse_init_out *answer = (struct fuse_init_out *)(reply + sizeof *out);
        uint64_t granted = offered & extra;
        answer->flags |= (uint32_t)granted;
        if (answer->flags & FUSE_INIT_EXT) answer->flags2 |= (uint32_t)(granted >> 32);
    }
    if (write(fd, reply, (size_t)length) != length) return -errno;
    return 0;
}

static inline uint64_t CFuse_init_handle_killpriv_v2(void) { return FUSE_HANDLE_KILLPRIV_V2; }

/// Capability bits, as plain values (they are macros of shifts).
static inline unsigned CFuse_cap_atomic_o_trunc(void) { return FUSE_CAP_ATOMIC_O_TRUNC; }
static inline unsigned CFuse_cap_writeback_cache(void) { return FUSE_CAP_WRITEBACK_CACHE; }
static inline unsigned CFuse_cap_parallel_dirops(void) { return FUSE_CAP_PARALLEL_DIROPS; }
static inline unsigned CFuse_cap_async_read(void) { return FUSE_CAP_ASYNC_READ; }
static inline unsigned CFuse_cap_auto_inval_data(void) { return FUSE_CAP_AUTO_INVAL_DATA; }

#endif
