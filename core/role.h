/* role.h - the roles of the control API, from least to most privileged (each includes those
 * below it). Used by the configuration (control.roles, admin.clients), the command table and
 * the CLI. Pure; any thread. */
#ifndef CUT_ROLE_H
#define CUT_ROLE_H

enum cut_role { CUT_ROLE_NONE = 0, CUT_ROLE_VIEWER, CUT_ROLE_OPERATOR, CUT_ROLE_DEPLOYER, CUT_ROLE_ADMIN };

/* "viewer", "operator", "deployer", "admin"; "none" for CUT_ROLE_NONE or an unknown value. */
const char *role_name(int role);

/* The role named name (exact, lower case), or CUT_ROLE_NONE when there is none. */
enum cut_role role_parse(const char *name);

#endif
