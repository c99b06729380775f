/* state_file.h - the runtime state on disk (control.state_file): the one file a replica keeps,
 * in the format of control/state.h (state_to_json / state_from_json). Control thread only.
 */
#ifndef CUT_STATE_FILE_H
#define CUT_STATE_FILE_H

#include <stddef.h>

#include "control/state.h"

/* Writes st to path durably: path.tmp, write, fsync, rename over path, fsync of the directory.
 * Returns 0 or CUT_EIO with a message in err (CUT_ENOMEM when out of memory; CUT_EINVAL, and
 * nothing written, when st itself would not load back: a weight above 10000, a bad or duplicate
 * name). Nothing is left half-written: a crash at any point leaves either the old file or the
 * new one. */
int state_file_save(const char *path, const struct state *st, char *err, size_t cap);

/* Reads path. Returns 0 (out filled), CUT_ENOENT when the file does not exist (out empty), or
 * CUT_EINVAL / CUT_EIO with a message in err (corrupt, unreadable). */
int state_file_load(const char *path, struct state *out, char *err, size_t cap);

#endif
