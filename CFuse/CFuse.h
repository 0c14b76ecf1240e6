// libfuse3's low-level API for Swift. Only what Swift cannot import directly is wrapped here.
#ifndef POCKET_CFUSE_H
#define POCKET_CFUSE_H

#define FUSE_USE_VERSION 35
#include <fuse_lowlevel.h>
#include <errno.h>

#endif
