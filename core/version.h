/* version.h - the one place the version is written (cutover -V, cutoverctl, the version op, the
 * SIEM's LEEF header, cutover_info). */
#ifndef CUT_VERSION_H
#define CUT_VERSION_H

#define CUTOVER_VERSION "0.3.0"

#endif
