// libfuse3's low-level API for Swift. Only what Swift cannot import directly is wrapped here,
// in static inline CFuse_… functions.
#ifndef POCKET_CFUSE_H
#define POCKET_CFUSE_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>
#include <errno.h>
#include <stddef.h>

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

/// Capability bits, as plain values (they are macros of shifts).
static inline unsigned CFuse_cap_atomic_o_trunc(void) { return FUSE_CAP_ATOMIC_O_TRUNC; }
static inline unsigned CFuse_cap_writeback_cache(void) { return FUSE_CAP_WRITEBACK_CACHE; }
static inline unsigned CFuse_cap_parallel_dirops(void) { return FUSE_CAP_PARALLEL_DIROPS; }
static inline unsigned CFuse_cap_async_read(void) { return FUSE_CAP_ASYNC_READ; }
static inline unsigned CFuse_cap_auto_inval_data(void) { return FUSE_CAP_AUTO_INVAL_DATA; }

#endif
