// What FUSE itself costs for buffered sequential reads on this machine: a read-only file system
// with one file, `data`, whose reads are answered at once from a 1 MiB buffer in memory, mounted
// with the settings Pocket's daemon uses (1 MiB requests, 64 background requests, asynchronous
// reads, 16 threads). `scripts/bench.py` reads it with fio beside the Pocket mount (P4): no daemon
// can serve a read for less than this one.
//
//   cc -O2 -o fuse-ceiling scripts/fuse-ceiling.c $(pkg-config --cflags --libs fuse3)
//   fuse-ceiling MOUNTPOINT [SIZE_BYTES]     (serves until unmounted; SIZE default 4 GiB)
#define FUSE_USE_VERSION 34
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static off_t file_size = 4L << 30;
static char buffer[1 << 20];

static void attributes(fuse_ino_t ino, struct stat *st) {
    memset(st, 0, sizeof *st);
    st->st_ino = ino;
    if (ino == FUSE_ROOT_ID) {
        st->st_mode = S_IFDIR | 0755;
        st->st_nlink = 2;
    } else {
        st->st_mode = S_IFREG | 0444;
        st->st_nlink = 1;
        st->st_size = file_size;
    }
}

static void ceiling_init(void *userdata, struct fuse_conn_info *conn) {
    (void)userdata;
    conn->max_write = 1 << 20;
    conn->max_readahead = 1 << 20;
    conn->max_background = 64;
    conn->congestion_threshold = 48;
    conn->want |= FUSE_CAP_ASYNC_READ;
    conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
}

static void ceiling_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
    if (parent != FUSE_ROOT_ID || strcmp(name, "data") != 0) {
        fuse_reply_err(req, ENOENT);
        return;
    }
    struct fuse_entry_param entry;
    memset(&entry, 0, sizeof entry);
    entry.ino = 2;
    entry.attr_timeout = 60;
    entry.entry_timeout = 60;
    attributes(2, &entry.attr);
    fuse_reply_entry(req, &entry);
}

static void ceiling_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)fi;
    struct stat st;
    attributes(ino, &st);
    fuse_reply_attr(req, &st, 60);
}

static void ceiling_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
    (void)ino;
    fuse_reply_open(req, fi);
}

static void ceiling_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info *fi) {
    (void)ino;
    (void)fi;
    if (offset >= file_size) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if (offset + (off_t)size > file_size) size = (size_t)(file_size - offset);
    if (size > sizeof buffer) size = sizeof buffer;
    fuse_reply_buf(req, buffer, size);
}

static const struct fuse_lowlevel_ops operations = {
    .init = ceiling_init,
    .lookup = ceiling_lookup,
    .getattr = ceiling_getattr,
    .open = ceiling_open,
    .read = ceiling_read,
};

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MOUNTPOINT [SIZE_BYTES]\n", argv[0]);
        return 2;
    }
    if (argc > 2) file_size = strtoll(argv[2], NULL, 10);
    memset(buffer, 'x', sizeof buffer);
    char *options[] = {argv[0], "-o", "fsname=fuse-ceiling,default_permissions,nosuid"};
    struct fuse_args args = FUSE_ARGS_INIT(3, options);
    struct fuse_session *session = fuse_session_new(&args, &operations, sizeof operations, NULL);
    if (session == NULL || fuse_session_mount(session, argv[1]) != 0) return 1;
    struct fuse_loop_config *config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(config, 16);
    int result = fuse_session_loop_mt(session, config);
    fuse_loop_cfg_destroy(config);
    fuse_session_unmount(session);
    fuse_session_destroy(session);
    return result == 0 ? 0 : 1;
}
