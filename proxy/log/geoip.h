/* geoip.h - the client's country for the access log, from a MaxMind DB (GeoIP2/GeoLite2 Country
 * or City, or any database with the same "country.iso_code" path) read with libmaxminddb.
 *
 * A struct geoip is opened on the control thread (the file is memory-mapped), hangs off every
 * snapshot like the TLS contexts (one counted reference each) and is only read afterwards:
 * lookups are lock-free and safe from every worker at once. A new file (reload, or the file
 * watcher seeing it replaced) is a new struct geoip; workers move to it with the next snapshot.
 */
#ifndef CUT_GEOIP_H
#define CUT_GEOIP_H

#include <stddef.h>

struct geoip;

/* Opens path; checks that it is a MaxMind DB. Returns 0, or CUT_EIO / CUT_ENOMEM with a message
 * in err. Control thread. */
int geoip_open(const char *path, struct geoip **out, char *err, size_t cap);
void geoip_ref(struct geoip *g);   /* NULL is ignored */
void geoip_unref(struct geoip *g); /* NULL is ignored; the last reference unmaps the file */

/* The ISO 3166-1 alpha-2 code of the numeric address ip ("81.2.69.160", "2a02:cf40::1") into
 * cc[3]. Returns 1 when found, 0 when the address is not in the database, not numeric, or the
 * record has no country. Any thread. */
int geoip_country(const struct geoip *g, const char *ip, char cc[3]);

#endif
