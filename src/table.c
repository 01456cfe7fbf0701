/* The class table (docs/design.md, "The table"). Tables are immutable but for
   two per-entry flags (found, done) and the settled mark, written with
   atomics; a racing writer only repeats an idempotent lookup.

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
#define _DEFAULT_SOURCE 1 /* MAP_ANON */
#include "core.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

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

/* Below this, freed heap costs a fork little and a mapping costs a call
   more (two system calls). */
#define SCRATCH_MAPPED 16384

void *
scratch_alloc(size_t bytes)
{
    void *memory;
    if (bytes < SCRATCH_MAPPED)
        return calloc(1, bytes);
    memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANON, -1, 0);
    return memory == MAP_FAILED ? NULL : memory;
}

void
scratch_free(void *memory, size_t bytes)
{
    if (bytes < SCRATCH_MAPPED)
        free(memory);
    else if (memory)
        munmap(memory, bytes);
}

static size_t
hash_name(const char *name)
{
    uint64_t h = 1469598103934665603u; /* FNV-1a */
    for (; *name; name++)
        h = (h ^ (unsigned char)*name) * 1099511628211u;
    return (size_t)h;
}

/* An open-addressing index of a table's names, alive while a table is built. */
struct index {
    uint32_t *slots; /* entry number + 1, or 0 */
    size_t mask, bytes;
};

static uint32_t *
slot_of(const struct index *ix, const struct table *t, const char *name)
{
    size_t slot = hash_name(name) & ix->mask;
    while (ix->slots[slot] && strcmp(entry_name(t, &t->entries[ix->slots[slot] - 1]), name))
        slot = (slot + 1) & ix->mask;
    return &ix->slots[slot];
}

/* Indexes t's names (nothing for no table); 0: no memory. */
static int
index_table(struct index *ix, const struct table *t)
{
    size_t slots = 4, i;
    ix->slots = NULL;
    ix->mask = ix->bytes = 0;
    if (!t || !t->count)
        return 1;
    while (slots < 2 * t->count)
        slots *= 2;
    ix->bytes = slots * sizeof(uint32_t);
    if (!(ix->slots = scratch_alloc(ix->bytes)))
        return 0;
    ix->mask = slots - 1;
    for (i = 0; i < t->count; i++) /* names in a table are unique */
        *slot_of(ix, t, entry_name(t, &t->entries[i])) = (uint32_t)(i + 1);
    return 1;
}

static const struct entry *
look_up(const struct index *ix, const struct table *t, const char *name)
{
    uint32_t number = ix->slots ? *slot_of(ix, t, name) : 0;
    return number ? &t->entries[number - 1] : NULL;
}

/* One walk over what the new table holds, in order: the old table's entries
   when appending, then the given names it lacks; each keeps its first source
   and what the old table knew of it (found, done). With t NULL it measures
   (*count, and the string bytes it returns); else it fills t, whose count
   was measured so. A run of entries with one source shares its copy. */
static size_t
lay_out(struct table *t, const struct table *old, const struct index *known,
        const struct name_list *given, int append, size_t *count)
{
    size_t kept = append && old ? old->count : 0, n = 0, bytes = 0, i;
    const char *previous = NULL;
    for (i = 0; i < kept + given->count; i++) {
        const struct entry *was = i < kept ? &old->entries[i]
                                           : look_up(known, old, given->names[i - kept]);
        const char *name = i < kept ? entry_name(old, was) : given->names[i - kept];
        const char *source = i < kept ? table_strings(old) + was->source : given->sources[i - kept];
        int shared = previous && strcmp(previous, source) == 0;
        if (i >= kept && append && was)
            continue; /* listed already */
        if (t) {
            struct entry *e = &t->entries[n];
            e->name = (uint32_t)bytes;
            memcpy(table_strings(t) + bytes, name, strlen(name) + 1);
            e->source = shared ? t->entries[n - 1].source : (uint32_t)(bytes + strlen(name) + 1);
            if (!shared)
                memcpy(table_strings(t) + e->source, source, strlen(source) + 1);
            atomic_init(&e->found, was ? atomic_load(&was->found) : 0);
            atomic_init(&e->done, was ? atomic_load(&was->done) : 0);
        }
        bytes += strlen(name) + 1 + (shared ? 0 : strlen(source) + 1);
        previous = source;
        n++;
    }
    *count = n;
    return bytes;
}

/* NULL: out of memory (or past what 32-bit offsets reach). */
static struct table *
build_table(struct table *old, const struct name_list *given, int append)
{
    struct index known;
    struct table *t = NULL;
    size_t count, bytes;
    if (!index_table(&known, old))
        return NULL;
    bytes = lay_out(NULL, old, &known, given, append, &count);
    if (bytes <= UINT32_MAX && (t = malloc(sizeof *t + count * sizeof(struct entry) + bytes))) {
        t->count = count;
        atomic_init(&t->settled, 0);
        lay_out(t, old, &known, given, append, &count);
    }
    scratch_free(known.slots, known.bytes);
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
find_class(struct table *t, struct entry *e)
{
    objc_class cls = runtime.lookUpClass(entry_name(t, e));
    if (cls)
        atomic_store_explicit(&e->found, 1, memory_order_relaxed);
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
        if (!(cls = find_class(t, e)))
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
