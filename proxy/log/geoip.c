/* geoip.c - country lookups with libmaxminddb (see geoip.h). */
#include "proxy/log/geoip.h"

#include <arpa/inet.h>
#include <maxminddb.h>
#include <netinet/in.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/addr.h"
#include "core/cut.h"

struct geoip {
    atomic_uint refs;
    MMDB_s db;
};

int geoip_open(const char *path, struct geoip **out, char *err, size_t cap)
{
    *out = NULL;
    struct geoip *g = calloc(1, sizeof *g);
    if (!g) {
        snprintf(err, cap, "out of memory");
        return CUT_ENOMEM;
    }
    int rc = MMDB_open(path, MMDB_MODE_MMAP, &g->db);
    if (rc != MMDB_SUCCESS) {
        snprintf(err, cap, "%s: %s", path,
                 rc == MMDB_IO_ERROR ? "cannot read the file" : MMDB_strerror(rc));
        free(g);
        return rc == MMDB_OUT_OF_MEMORY_ERROR ? CUT_ENOMEM : CUT_EIO;
    }
    atomic_init(&g->refs, 1);
    *out = g;
    return 0;
}

void geoip_ref(struct geoip *g)
{
    if (g)
        atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
}

void geoip_unref(struct geoip *g)
{
    if (g && atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) == 1) {
        MMDB_close(&g->db);
        free(g);
    }
}

int geoip_country(const struct geoip *g, const char *ip, char cc[3])
{
    cc[0] = '\0';
    struct sockaddr_storage ss;
    socklen_t sslen;
    if (addr_numeric(ip, 0, &ss, &sslen) != 0)
        return 0;
    int mmerr = MMDB_SUCCESS;
    /* libmaxminddb only reads the database: the const is dropped for its API, not for writes. */
    MMDB_lookup_result_s r =
        MMDB_lookup_sockaddr((MMDB_s *)(uintptr_t)&g->db, (struct sockaddr *)&ss, &mmerr);
    if (mmerr != MMDB_SUCCESS || !r.found_entry)
        return 0;
    MMDB_entry_data_s d;
    if (MMDB_get_value(&r.entry, &d, "country", "iso_code", NULL) != MMDB_SUCCESS ||
        !d.has_data || d.type != MMDB_DATA_TYPE_UTF8_STRING || d.data_size != 2)
        return 0;
    memcpy(cc, d.utf8_string, 2);
    cc[2] = '\0';
    return 1;
}
