/* The class table (docs/design.md, "The table"). Tables are immutable but for
   two per-entry caches (the Class and a done flag) and the settled mark,
   written with atomics; a racing writer only repeats an idempotent lookup.

   Lifetime. A reader counts itself in `readers` before loading the table
   pointer; a writer that swaps the pointer frees retired tables only when it
   then sees no reader (both seq_cst, so a reader that missed the swap is seen
   by the writer). Nobody waits for the count: at worst a retired table lives
   until the next reconfiguration. Each thread also keeps its own depth, so
   that a fork child, where only the forking thread lives on, restarts the
   count from that thread's depth (a +initialize that forks is still inside
   force_listed in the child). The depth lives in a pthread key, not a
   thread-local variable: the child handler reads it, and the first access to
   a thread-local may allocate, and on macOS before 12 take a dyld lock that
   fork does not reset (dyld threadLocalVariables.c, tlv_get_addr);
   pthread_getspecific does neither. */
#include "core.h"

#include <stdlib.h>
#include <string.h>

pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
atomic_long readers;
static pthread_key_t depth_key;
static int depth_known; /* the key exists; else the child keeps the count */

void
table_init(void)
{
    depth_known = pthread_key_create(&depth_key, NULL) == 0;
}

int
table_depth_known(void)
{
    return depth_known;
}

long
table_depth(void)
{
    return depth_known ? (long)(intptr_t)pthread_getspecific(depth_key) : 0;
}

static void
set_depth(long depth)
{
    if (depth_known)
        pthread_setspecific(depth_key, (void *)(intptr_t)depth);
}

static _Atomic(struct table *) current;
static struct table *retired; /* config_lock */

struct table *
table_enter(void)
{
    set_depth(table_depth() + 1);
    atomic_fetch_add(&readers, 1);
    return atomic_load(&current);
}

void
table_exit(void)
{
    atomic_fetch_sub(&readers, 1);
    set_depth(table_depth() - 1);
}

/* ---- building: plain C, config_lock held, GIL released -------------------- */

static size_t
hash_name(const char *name, size_t length)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    size_t i;
    for (i = 0; i < length; i++)
        h = (h ^ (unsigned char)name[i]) * 1099511628211u;
    return (size_t)h;
}

static struct entry *
find_entry(struct table *t, const char *name, size_t length)
{
    size_t slot;
    if (!t)
        return NULL;
    for (slot = hash_name(name, length) & t->mask; t->index[slot]; slot = (slot + 1) & t->mask) {
        struct entry *e = &t->entries[t->index[slot] - 1];
        if (e->length == length && memcmp(e->name, name, length) == 0)
            return e;
    }
    return NULL;
}

static const char *
copy_string(char **strings, const char *text, size_t length)
{
    char *copy = *strings;
    memcpy(copy, text, length);
    copy[length] = '\0';
    *strings += length + 1;
    return copy;
}

/* Adds one name unless t has it; known: what an older table knew of it. */
static void
add_entry(struct table *t, char **strings, const char *name, size_t length, const char *source,
          size_t source_length, const struct entry *known)
{
    struct entry *e;
    const char *previous = t->count ? t->entries[t->count - 1].source : NULL;
    size_t slot;
    if (find_entry(t, name, length))
        return;
    e = &t->entries[t->count];
    e->name = copy_string(strings, name, length);
    e->length = (uint32_t)length;
    e->source = previous && strlen(previous) == source_length &&
                        memcmp(previous, source, source_length) == 0
                    ? previous
                    : copy_string(strings, source, source_length);
    atomic_init(&e->cls, known ? atomic_load(&known->cls) : NULL);
    atomic_init(&e->done, known ? atomic_load(&known->done) : 0);
    for (slot = hash_name(name, length) & t->mask; t->index[slot]; slot = (slot + 1) & t->mask)
        ;
    t->index[slot] = (uint32_t)++t->count;
}

/* The old table's names (when appending) then the given ones, without
   duplicates, each keeping its first source and what the old table knew of
   it: linear, by hashing. NULL: out of memory. */
static struct table *
build_table(struct table *old, const struct name_list *given, int append)
{
    size_t kept = append && old ? old->count : 0, most = kept + given->count, slots = 4;
    size_t bytes = 0, i;
    struct table *t;
    char *strings;
    while (slots < 2 * most)
        slots *= 2;
    for (i = 0; i < kept; i++)
        bytes += old->entries[i].length + strlen(old->entries[i].source) + 2;
    for (i = 0; i < given->count; i++)
        bytes += given->lengths[i] + given->source_lengths[i] + 2;
    t = malloc(sizeof *t + most * sizeof(struct entry) + slots * sizeof(uint32_t) + bytes + 1);
    if (!t)
        return NULL;
    t->index = (uint32_t *)&t->entries[most];
    strings = (char *)&t->index[slots];
    memset(t->index, 0, slots * sizeof(uint32_t));
    t->mask = slots - 1;
    t->count = 0;
    atomic_init(&t->settled, 0);
    for (i = 0; i < kept; i++) {
        const struct entry *e = &old->entries[i];
        add_entry(t, &strings, e->name, e->length, e->source, strlen(e->source), e);
    }
    for (i = 0; i < given->count; i++)
        add_entry(t, &strings, given->names[i], given->lengths[i], given->sources[i],
                  given->source_lengths[i], find_entry(old, given->names[i], given->lengths[i]));
    return t;
}

/* Builds and swaps under one lock, so concurrent appends lose nothing; frees
   retired tables when no reader can hold one. */
int
set_table(const struct name_list *given, int append)
{
    struct table *fresh = build_table(atomic_load(&current), given, append), *old;
    if (!fresh)
        return 0;
    old = atomic_exchange(&current, fresh);
    if (old) {
        old->retired_next = retired;
        retired = old;
    }
    if (atomic_load(&readers) == 0) {
        while (retired) {
            old = retired;
            retired = old->retired_next;
            free(old);
        }
    }
    return 1;
}

/* ---- the forcing pass: never in a fork ------------------------------------ */

objc_class
find_class(struct entry *e)
{
    objc_class cls = atomic_load_explicit(&e->cls, memory_order_relaxed);
    if (!cls && (cls = runtime.lookUpClass(e->name)) != NULL)
        atomic_store_explicit(&e->cls, cls, memory_order_relaxed);
    return cls;
}

/* Looks up the listed classes not found yet, when classes were added since
   the last pass (or always, without a load signal), and unless this process
   is restricted forces the found ones not done yet. Returns how many it
   forced. The runtime is bound; the GIL is released. */
uint64_t
force_listed(void)
{
    struct table *t = table_enter();
    uint64_t seen = classes_added(), forced = 0; /* read before looking */
    int signal = load_signal_intact(), pending = 0;
    size_t i;
    if (!t || atomic_load(&restricted) || (signal && atomic_load(&t->settled) == seen + 1)) {
        table_exit();
        return 0;
    }
    for (i = 0; i < t->count; i++) {
        struct entry *e = &t->entries[i];
        objc_class cls;
        if (atomic_load_explicit(&e->done, memory_order_acquire))
            continue;
        if (!(cls = find_class(e)))
            continue;
        /* Checked per class: a +initialize that forks continues this loop in
           a restricted child. */
        if (atomic_load(&restricted)) {
            pending = 1;
            continue;
        }
        runtime.force(cls);
        if (atomic_exchange(&e->done, 1) == 0)
            forced++;
    }
    if (!pending && !first_pass_after_hooking())
        atomic_store(&t->settled, seen + 1);
    table_exit();
    return forced;
}
