/* The native core's parts, one file per job (as setproctitle keeps binding
   apart from the work); docs/design.md explains each rule cited here.

   runtime.c  finds the Objective-C runtime already loaded and binds it; the
              load signal; forcing one class; read-only diagnostic queries.
   table.c    the class table: built outside any lock, swapped in, read
              through table_enter()/table_exit(); the forcing pass.
   fork.c     the pthread_atfork handlers and the restricted-process mirror.
   _objcprefork.c  the Python module: the only file that touches Python. */
#ifndef OBJCPREFORK_CORE_H
#define OBJCPREFORK_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

typedef void *objc_class;

/* ---- runtime.c ---------------------------------------------------------- */

/* Bound once, outside any fork, under config_lock; published by
   runtime_bound (release). */
extern struct runtime {
    objc_class (*lookUpClass)(const char *); /* realizes, never initializes */
    void (*force)(objc_class);               /* runs +initialize */
    const char *forcing_call;
    char path[1024];
    const char *load_signal; /* what tells us classes were added, or NULL */
} runtime;
extern atomic_int runtime_bound;
extern _Atomic(const char *) runtime_missing; /* why runtime_bound is 0 */
extern const char *diagnostics_missing; /* the first query the runtime lacks */

int ensure_runtime(void); /* binds it if newly loaded; 1 when bound */
uint64_t classes_added(void); /* the load signal's count; see table.c */
int first_pass_after_hooking(void);
int load_signal_intact(void);

struct class_row {
    const char *name, *image, *initializer;
    int trivial;
};
int describe_class(objc_class cls, struct class_row *row); /* 0: no diagnostics */
objc_class *all_classes(int *count); /* malloc'd; NULL: none or no memory */

/* ---- table.c ------------------------------------------------------------ */

/* Every fork copies a table's pages, so a table holds only what a pass
   needs (docs/design.md, "The table"): 12 bytes an entry, then the strings
   (each run of entries with one source shares its copy). The index that
   finds names while building exists only then. */
struct entry {
    uint32_t name, source; /* offsets of NUL-terminated strings in table_strings() */
    atomic_uchar found;    /* looked up and loaded; classes are never unloaded */
    atomic_uchar done;     /* +initialize ran, forced by us */
};

struct table {
    struct table *retired_next;
    _Atomic uint64_t settled; /* classes_added()+1 when a pass left nothing to force */
    size_t count;
    struct entry entries[]; /* then the strings */
};
#define table_strings(t) ((char *)&(t)->entries[(t)->count])
#define entry_name(t, e) (table_strings(t) + (e)->name)

struct name_list { /* names unique by their bytes, sources in the same order; NUL-free UTF-8 */
    size_t count;
    const char **names, **sources;
};

/* Memory that is freed at once: from a size on, it goes back to the system,
   not to the heap, where freed memory stays resident and every fork copies it. */
void *scratch_alloc(size_t bytes); /* zeroed; NULL: no memory */
void scratch_free(void *memory, size_t bytes);

extern pthread_mutex_t config_lock;
extern atomic_long readers;

void table_init(void);      /* once, at first load */
long table_depth(void);     /* this thread's depth; never allocates or locks */
int table_depth_known(void);

struct table *table_enter(void);
void table_exit(void);
int set_table(const struct name_list *given, int append); /* config_lock held; 0: no memory */
uint64_t force_listed(void); /* GIL released, never in a fork */
objc_class find_class(struct table *t, struct entry *e); /* looks up, marks found; never initializes */

/* ---- fork.c ------------------------------------------------------------- */

/* restricted: a fork child (or descendant) of a threaded parent, sticky, as
   objc's MultithreadedForkChild but whether its check is on or not: nothing
   new is forced there either way. check_off_reason: why objc's check is off
   (then objc aborts nothing, and nothing is reported blocked). */
extern atomic_int installed, restricted, no_child_cores;
extern const char *restricted_reason, *check_off_reason;
void first_load(long start_pid); /* once per process, before any configuration */
int register_handlers_once(void); /* 0 or an errno */

#endif
