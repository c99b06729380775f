/* Unit tests for core/role.c. */
#include <criterion/criterion.h>

#include "core/role.h"

Test(role, names_round_trip)
{
    for (int r = CUT_ROLE_VIEWER; r <= CUT_ROLE_ADMIN; r++)
        cr_assert_eq(role_parse(role_name(r)), r, "%d", r);
    cr_assert_str_eq(role_name(CUT_ROLE_VIEWER), "viewer");
    cr_assert_str_eq(role_name(CUT_ROLE_OPERATOR), "operator");
    cr_assert_str_eq(role_name(CUT_ROLE_DEPLOYER), "deployer");
    cr_assert_str_eq(role_name(CUT_ROLE_ADMIN), "admin");
}

Test(role, unknown_is_none)
{
    cr_assert_str_eq(role_name(CUT_ROLE_NONE), "none");
    cr_assert_str_eq(role_name(-1), "none");
    cr_assert_str_eq(role_name(CUT_ROLE_ADMIN + 1), "none");
    cr_assert_eq(role_parse("none"), CUT_ROLE_NONE);
    cr_assert_eq(role_parse("Admin"), CUT_ROLE_NONE);
    cr_assert_eq(role_parse(""), CUT_ROLE_NONE);
    cr_assert_eq(role_parse("admins"), CUT_ROLE_NONE);
}

Test(role, order_is_privilege)
{
    cr_assert_lt(CUT_ROLE_VIEWER, CUT_ROLE_OPERATOR);
    cr_assert_lt(CUT_ROLE_OPERATOR, CUT_ROLE_DEPLOYER);
    cr_assert_lt(CUT_ROLE_DEPLOYER, CUT_ROLE_ADMIN);
}
