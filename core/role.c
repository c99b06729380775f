/* role.c - role names. */
#include "core/role.h"

#include <string.h>

static const char *const role_names[] = {"none", "viewer", "operator", "deployer", "admin"};

const char *role_name(int role)
{
    if (role <= CUT_ROLE_NONE || role > CUT_ROLE_ADMIN)
        return "none";
    return role_names[role];
}

enum cut_role role_parse(const char *name)
{
    for (int r = CUT_ROLE_VIEWER; r <= CUT_ROLE_ADMIN; r++)
        if (strcmp(name, role_names[r]) == 0)
            return (enum cut_role)r;
    return CUT_ROLE_NONE;
}
