/* list.h - the intrusive doubly-linked list every connection list uses (worker connection
 * lists, control clients, idle upstream connections). A node is any struct with the two named
 * pointer fields; head points to the first node. Not thread-safe: one owner per list. */
#ifndef CUT_LIST_H
#define CUT_LIST_H

/* Pushes node at the front of *headp. */
#define CUT_LIST_PUSH(headp, node, next, prev)                                                     \
    do {                                                                                           \
        (node)->prev = NULL;                                                                       \
        (node)->next = *(headp);                                                                   \
        if (*(headp))                                                                              \
            (*(headp))->prev = (node);                                                             \
        *(headp) = (node);                                                                         \
    } while (0)

/* Removes node from *headp and clears its links. */
#define CUT_LIST_REMOVE(headp, node, next, prev)                                                   \
    do {                                                                                           \
        if ((node)->prev)                                                                          \
            (node)->prev->next = (node)->next;                                                     \
        else                                                                                       \
            *(headp) = (node)->next;                                                               \
        if ((node)->next)                                                                          \
            (node)->next->prev = (node)->prev;                                                     \
        (node)->next = (node)->prev = NULL;                                                        \
    } while (0)

#endif
