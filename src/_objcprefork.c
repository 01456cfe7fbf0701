/* objcprefork._objcprefork: run Objective-C +initialize for listed classes
   before fork(), so a child of a threaded parent finds them initialized.

   Where classes are forced, in order of preference (objc-fork-safety.md, part 4):
   1. at configuration time: set_table() then force(), from Python;
   2. for forks made from Python: force() as an os.register_at_fork(before=)
      hook, which runs before CPython takes its fork locks;
   3. in the pthread_atfork prepare handler, only what is still pending: the
      last resort for forks made by C code.
   force() releases the GIL while it forces: a +initialize may wait on a thread
   that needs the GIL.

   Restricted processes (part 1, item 7). In a fork child of a threaded parent,
   and in all its descendants, Apple's runtime aborts at the first +initialize
   of any non-trivial class, whoever starts it. objc's own flag
   (MultithreadedForkChild, objc-os.mm) is not exported, so it is mirrored here
   from the same inputs: threadedness sampled at every fork (after our own
   forcing, as objc samples after every client prepare handler), and, for a
   module first loaded after a fork, the evidence named in restricted_at_load().
   A restricted process forces nothing new, anywhere: it keeps what its parent
   initialized, and status() reports the rest as "blocked".

   Locks. The fork handlers take no lock at all: they read the table through
   atomics. config_lock serialises the writers (set_table, set_enabled, runtime
   binding). It is taken only with the GIL released, and held only across plain
   C (malloc, free, hashing, dlsym): never across a Python call, an objc call or
   a +initialize. No thread can hold it at its own fork, so the child handler
   re-creates it: a thread of the parent that held it is gone.

   Table lifetime. Tables are immutable but for two per-entry caches (the Class
   and a done flag), written with atomics; a racing writer only repeats an
   idempotent lookup. A reader (handler, force, snapshot) counts itself in
   `readers` before loading the table pointer; a writer that swaps the pointer
   frees retired tables only when it then sees no reader (both seq_cst, so a
   reader that missed the swap is seen by the writer). Nobody ever waits for
   the count: at worst a retired table lives until the next reconfiguration.

   The runtime is found at run time among what is already loaded (nothing links
   to it and nothing here loads it), and only outside the fork handlers: dlopen
   and dlsym take the loader's lock, which a prepare handler must never wait on
   (part 4: macOS 13+ takes dyld's lock before client prepare handlers). */
#define _GNU_SOURCE 1 /* dladdr, RTLD_DEFAULT; as pyconfig.h has it */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#ifdef __APPLE__
#include <libproc.h>
#include <sys/proc_info.h>
#include <sys/utsname.h>
#endif

typedef void *objc_class;
typedef void *objc_sel;
typedef void *objc_method;
typedef void (*objc_imp)(void);

/* ---- the runtime: bound outside any fork, published once complete --------- */

static struct {
    objc_class (*lookUpClass)(const char *); /* realizes, never initializes */
    objc_imp (*getMethodImplementation)(objc_class, objc_sel); /* initializes */
    void (*sendInitialize)(objc_class); /* libobjc2's forcing call, else NULL */
    objc_sel self_sel;
    char path[1024];
    /* read-only queries for the diagnostics; none of them runs +initialize */
    int (*getClassList)(objc_class *, int);
    const char *(*getName)(objc_class);
    objc_class (*getSuperclass)(objc_class);
    objc_method (*getClassMethod)(objc_class, objc_sel);
    objc_imp (*methodImplementation)(objc_method);
    const char *(*imageName)(objc_class); /* Apple and libobjc2 only */
    objc_sel initialize_sel;
} runtime;
static atomic_int runtime_bound; /* set, with release, once every field is */
static const char *runtime_missing = "not looked for yet";

static int
bind_symbols(void *handle, const char *path)
{
    void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    objc_sel (*registerName)(const char *);
    if (!h)
        h = handle;
    *(void **)&runtime.lookUpClass = dlsym(h, "objc_lookUpClass");
    *(void **)&runtime.getMethodImplementation = dlsym(h, "class_getMethodImplementation");
    *(void **)&registerName = dlsym(h, "sel_registerName");
    *(void **)&runtime.getClassList = dlsym(h, "objc_getClassList");
    *(void **)&runtime.getName = dlsym(h, "class_getName");
    *(void **)&runtime.getSuperclass = dlsym(h, "class_getSuperclass");
    *(void **)&runtime.getClassMethod = dlsym(h, "class_getClassMethod");
    *(void **)&runtime.methodImplementation = dlsym(h, "method_getImplementation");
    if (!runtime.lookUpClass || !runtime.getMethodImplementation || !registerName ||
        !runtime.getClassList || !runtime.getName || !runtime.getSuperclass ||
        !runtime.getClassMethod || !runtime.methodImplementation)
        return 0;
    /* libobjc2's class_getMethodImplementation answers the forwarding IMP until
       the class has a dispatch table and never sends +initialize (sendmsg2.c);
       its exported objc_send_initialize does (dtable.c). Neither Apple's nor
       GCC's runtime exports that name. */
    *(void **)&runtime.sendInitialize = dlsym(h, "objc_send_initialize");
    *(void **)&runtime.imageName = dlsym(h, "class_getImageName");
    /* Class + "self": a selector every root class answers, so the lookup never
       reaches the resolver; the IMP is never called (part 3). */
    runtime.self_sel = registerName("self");
    runtime.initialize_sel = registerName("initialize");
    snprintf(runtime.path, sizeof runtime.path, "%s", path);
    return 1;
}

static const char *const runtime_libraries[] = {
#ifdef __APPLE__
    "/usr/lib/libobjc.A.dylib",
#else
    "libobjc.so.4",   /* GCC's libobjc, which GNUstep on Debian also uses */
    "libobjc.so.4.6", /* GNUstep's libobjc2 */
#endif
};

/* Symbols the process already sees first, then a runtime library already
   loaded, even RTLD_LOCAL (ctypes' default); RTLD_NOLOAD never loads one.
   config_lock held; never called from a fork handler. */
static void
find_runtime(void)
{
    Dl_info info;
    void *probe;
    size_t i;
    if (atomic_load(&runtime_bound))
        return;
#ifdef __APPLE__
    {
        struct utsname name;
        /* Darwin 17 is macOS 10.13, the first to enforce; on 10.12 client
           prepare handlers ran after the runtime took its locks. */
        if (uname(&name) == 0 && atoi(name.release) < 17) {
            runtime_missing = "macOS before 10.13 does not enforce fork safety";
            return;
        }
    }
#endif
    probe = dlsym(RTLD_DEFAULT, "objc_lookUpClass");
    if (probe && dladdr(probe, &info) && info.dli_fname && bind_symbols(RTLD_DEFAULT, info.dli_fname))
        goto bound;
    for (i = 0; i < sizeof runtime_libraries / sizeof runtime_libraries[0]; i++) {
        void *handle = dlopen(runtime_libraries[i], RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
        probe = handle ? dlsym(handle, "objc_lookUpClass") : NULL;
        if (probe && dladdr(probe, &info) && info.dli_fname && bind_symbols(handle, info.dli_fname))
            goto bound; /* the handle stays open: the runtime is never unloaded */
    }
    runtime_missing = "no Objective-C runtime is loaded in this process";
    return;
bound:
    runtime_missing = NULL;
    atomic_store(&runtime_bound, 1);
}

/* ---- threadedness, the input of objc's restriction ------------------------- */

#ifdef __APPLE__
/* pthread_is_threaded_np: "has this process ever created a thread", the very
   value _objc_atfork_prepare records (objc-os.mm; libpthread pthread.c). */
static int
process_threaded(void)
{
    return pthread_is_threaded_np() != 0;
}
#else
/* glibc >= 2.32: __libc_single_threaded turns 0 at the first thread and stays
   0, in fork children too; the emulation uses the same flag. Where the libc
   has none (musl), whether the parent was threaded is unknown: assume it was,
   so children force nothing new. */
static const char *single_threaded;

static int
process_threaded(void)
{
    return single_threaded ? *single_threaded == 0 : 1;
}
#endif

/* ---- the class table ---------------------------------------------------- */

struct entry {
    const char *name; /* points into the table's own allocation */
    size_t length;
    _Atomic(objc_class) cls; /* cached once found; classes are never unloaded */
    atomic_int done;         /* +initialize ran, forced by us or seen so in the parent */
};

struct table {
    struct table *retired_next;
    uint64_t generation;
    size_t count, mask; /* mask + 1 slots in index, a power of two */
    size_t *index;      /* slot -> entry number + 1, or 0 */
    struct entry entries[];
};

enum { STATE_PENDING, STATE_INITIALIZED, STATE_NOT_LOADED, STATE_BLOCKED };
static const char *const state_names[] = {"pending", "initialized", "not loaded", "blocked"};

static _Atomic(struct table *) current;
static atomic_long readers;         /* threads reading some table now */
static _Atomic uint64_t work_left;  /* generation of current while it has entries to do, else 0 */
static atomic_int enabled;
static atomic_int restricted;       /* sticky, like objc's MultithreadedForkChild */
static const char *restricted_reason;
static atomic_int fork_threaded;    /* sampled in prepare, read in the child */
static atomic_int no_child_cores;   /* RLIMIT_CORE 0 in forked children */
static _Atomic uint64_t forks, forced_in_fork, handler_last_ns, handler_max_ns;

static pthread_mutex_t config_lock = PTHREAD_MUTEX_INITIALIZER;
static struct table *retired; /* config_lock */
static uint64_t generations;  /* config_lock */

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void
force_class(objc_class cls)
{
    if (runtime.sendInitialize)
        runtime.sendInitialize(cls);
    else
        (void)runtime.getMethodImplementation(cls, runtime.self_sel);
}

/* Looks up the missing entries of t and, unless this process is restricted,
   forces the found ones not done yet; returns how many it forced. The caller
   counts itself in readers and has checked runtime_bound. */
static uint64_t
work_on(struct table *t)
{
    uint64_t forced = 0;
    int left = 0;
    size_t i;
    for (i = 0; i < t->count; i++) {
        struct entry *e = &t->entries[i];
        objc_class cls;
        if (atomic_load_explicit(&e->done, memory_order_acquire))
            continue;
        cls = atomic_load_explicit(&e->cls, memory_order_relaxed);
        if (!cls && (cls = runtime.lookUpClass(e->name)) != NULL)
            atomic_store_explicit(&e->cls, cls, memory_order_relaxed);
        /* Checked per class: a +initialize that forks continues this loop in
           a restricted child. */
        if (!cls || atomic_load(&restricted)) {
            left = 1;
            continue;
        }
        force_class(cls);
        if (atomic_exchange(&e->done, 1) == 0)
            forced++;
    }
    if (!left) { /* clear the flag only if it still speaks of this table */
        uint64_t expected = t->generation;
        atomic_compare_exchange_strong(&work_left, &expected, 0);
    }
    return forced;
}

/* ---- the fork handlers: no Python, no allocation, no lock ------------------ */

static void
prepare(void)
{
    atomic_fetch_add_explicit(&forks, 1, memory_order_relaxed);
    if (!atomic_load_explicit(&enabled, memory_order_relaxed))
        goto sample;
    if (atomic_load_explicit(&work_left, memory_order_relaxed) && !atomic_load(&restricted) &&
        atomic_load_explicit(&runtime_bound, memory_order_acquire)) {
        uint64_t start = now_ns(), elapsed, max;
        atomic_fetch_add(&readers, 1);
        atomic_fetch_add_explicit(&forced_in_fork, work_on(atomic_load(&current)),
                                  memory_order_relaxed);
        atomic_fetch_sub(&readers, 1);
        elapsed = now_ns() - start;
        atomic_store_explicit(&handler_last_ns, elapsed, memory_order_relaxed);
        max = atomic_load_explicit(&handler_max_ns, memory_order_relaxed);
        while (elapsed > max && !atomic_compare_exchange_weak(&handler_max_ns, &max, elapsed))
            ;
    }
sample:
    /* Last, as objc samples after every client prepare handler: a
       +initialize run above may have started a thread. Installed or not:
       a child must know it is restricted before anyone installs there. */
    atomic_store(&fork_threaded, process_threaded());
}

static void
after_fork_child(void)
{
    if (atomic_load(&fork_threaded) && !atomic_load(&restricted)) {
        restricted_reason = "a fork child of a threaded parent";
        atomic_store(&restricted, 1);
    }
    /* Only this thread lives on, and it held neither the lock nor, unless a
       +initialize forked, a table: threads of the parent that did are gone. */
    atomic_store(&readers, 0);
    pthread_mutex_init(&config_lock, NULL);
    if (atomic_load(&no_child_cores)) { /* two syscalls; the parent keeps its limit */
        struct rlimit limit;
        if (getrlimit(RLIMIT_CORE, &limit) == 0) {
            limit.rlim_cur = 0;
            setrlimit(RLIMIT_CORE, &limit);
        }
    }
}

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_error = -1;

static void
register_handlers(void)
{
    register_error = pthread_atfork(prepare, NULL, after_fork_child);
}

#ifndef __APPLE__
/* Threads alive now: field 20 of /proc/self/stat; 0 if unknown. */
static long
live_threads(void)
{
    char buffer[1024], *p;
    long threads = 0;
    int field;
    FILE *f = fopen("/proc/self/stat", "r");
    size_t n = f ? fread(buffer, 1, sizeof buffer - 1, f) : 0;
    if (f)
        fclose(f);
    buffer[n] = '\0';
    if (!(p = strrchr(buffer, ')')))
        return 0;
    for (field = 2; field < 20 && (p = strchr(p + 1, ' ')) != NULL; field++)
        ;
    if (p)
        threads = strtol(p + 1, NULL, 10);
    return threads;
}
#endif

/* Evidence, for a module first loaded after a fork, that objc may already
   have restricted this process; NULL when there is none. start_pid: the pid
   objcprefork's start-up line recorded in this interpreter, or 0. */
static const char *
restricted_at_load(long start_pid)
{
#ifdef __APPLE__
    /* XNU's fork never copies P_EXEC (kern_fork.c), which proc_info.c reports
       as PROC_FLAG_EXEC: without it, this process forked and has not exec'd
       since, and whether its parent was threaded is unknown. */
    struct proc_bsdinfo info;
    (void)start_pid;
    if (proc_pidinfo(getpid(), PROC_PIDTBSDINFO, 0, &info, sizeof info) != (int)sizeof info)
        return "it cannot tell whether this process is a fork child (proc_pidinfo failed)";
    if (!(info.pbi_flags & PROC_FLAG_EXEC))
        return "loaded in a fork child that has not exec'd, whose parent may have been threaded";
    return NULL;
#else
    /* glibc keeps its flag at 0 in the fork child of a threaded parent, and
       also in a process that ran threads itself. A pid recorded at start-up
       tells the two apart; without one, a threaded process with a single
       thread left may be such a child: doubt means restricted. */
    if (!single_threaded || *single_threaded)
        return NULL; /* never threaded, or no flag to read (musl) */
    if (start_pid > 0)
        return start_pid == (long)getpid() ? NULL
                                           : "loaded in a fork child of a threaded process";
    if (live_threads() == 1)
        return "loaded in a once-threaded process with one thread left, which may be the "
               "fork child of a threaded parent (no start-up record tells)";
    return NULL;
#endif
}

/* ---- building tables: plain C, config_lock held, GIL released -------------- */

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

struct name_list {
    size_t count;
    const char **names;
    size_t *lengths;
};

/* Adds one name unless t has it; known: what an older table knew of it. */
static void
add_entry(struct table *t, char **strings, const char *name, size_t length,
          const struct entry *known)
{
    struct entry *e;
    size_t slot;
    if (find_entry(t, name, length))
        return;
    e = &t->entries[t->count];
    memcpy(*strings, name, length);
    (*strings)[length] = '\0';
    e->name = *strings;
    e->length = length;
    *strings += length + 1;
    atomic_init(&e->cls, known ? atomic_load(&known->cls) : NULL);
    atomic_init(&e->done, known ? atomic_load(&known->done) : 0);
    for (slot = hash_name(name, length) & t->mask; t->index[slot]; slot = (slot + 1) & t->mask)
        ;
    t->index[slot] = ++t->count;
}

/* The old table's names (when appending) then the given ones, without
   duplicates, keeping what the old table knew of each: linear, by hashing.
   NULL: out of memory. */
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
        bytes += old->entries[i].length + 1;
    for (i = 0; i < given->count; i++)
        bytes += given->lengths[i] + 1;
    t = malloc(sizeof *t + most * sizeof(struct entry) + slots * sizeof(size_t) + bytes + 1);
    if (!t)
        return NULL;
    t->index = (size_t *)&t->entries[most];
    strings = (char *)&t->index[slots];
    memset(t->index, 0, slots * sizeof(size_t));
    t->mask = slots - 1;
    t->count = 0;
    for (i = 0; i < kept; i++)
        add_entry(t, &strings, old->entries[i].name, old->entries[i].length, &old->entries[i]);
    for (i = 0; i < given->count; i++)
        add_entry(t, &strings, given->names[i], given->lengths[i],
                  find_entry(old, given->names[i], given->lengths[i]));
    return t;
}

/* Swaps fresh in; frees retired tables when no reader can hold one.
   config_lock held. */
static void
publish(struct table *fresh)
{
    struct table *old;
    size_t i;
    int todo = 0;
    fresh->generation = ++generations;
    for (i = 0; i < fresh->count && !todo; i++)
        todo = !atomic_load(&fresh->entries[i].done);
    old = atomic_exchange(&current, fresh);
    atomic_store(&work_left, todo ? fresh->generation : 0);
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
}

/* ---- the Python side ----------------------------------------------------- */

#define LOCKED(statement)                                                                     \
    do {                                                                                      \
        Py_BEGIN_ALLOW_THREADS pthread_mutex_lock(&config_lock);                              \
        statement;                                                                            \
        pthread_mutex_unlock(&config_lock);                                                   \
        Py_END_ALLOW_THREADS                                                                  \
    } while (0)

static PyObject *
set_table(PyObject *module, PyObject *args)
{
    PyObject *names;
    struct name_list given = {0, NULL, NULL};
    struct table *fresh = NULL;
    int append = 0;
    Py_ssize_t i, n;
    if (!PyArg_ParseTuple(args, "O!|p:set_table", &PyTuple_Type, &names, &append))
        return NULL;
    n = PyTuple_Size(names);
    given.names = PyMem_Malloc(sizeof(char *) * (size_t)(n ? n : 1));
    given.lengths = PyMem_Malloc(sizeof(size_t) * (size_t)(n ? n : 1));
    if (!given.names || !given.lengths)
        goto fail_memory;
    for (i = 0; i < n; i++) { /* the tuple keeps each UTF-8 buffer alive */
        PyObject *item = PyTuple_GetItem(names, i);
        Py_ssize_t length;
        if (!PyUnicode_Check(item)) {
            PyErr_Format(PyExc_TypeError, "class names must be str, not %R", item);
            goto fail;
        }
        if (!(given.names[i] = PyUnicode_AsUTF8AndSize(item, &length)))
            goto fail;
        given.lengths[i] = (size_t)length;
    }
    given.count = (size_t)n;
    LOCKED({
        /* Built and swapped under one lock: concurrent appends lose nothing. */
        fresh = build_table(atomic_load(&current), &given, append);
        if (fresh)
            publish(fresh);
    });
    PyMem_Free(given.names);
    PyMem_Free(given.lengths);
    if (!fresh)
        return PyErr_NoMemory();
    Py_RETURN_NONE;
fail_memory:
    PyErr_NoMemory();
fail:
    PyMem_Free(given.names);
    PyMem_Free(given.lengths);
    return NULL;
}

static int
register_once_or_fail(void)
{
    pthread_once(&register_once, register_handlers);
    if (register_error != 0) {
        errno = register_error;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    return 0;
}

/* Core dumps in forked children (their parent keeps its limit, and what a
   child execs keeps the child's); returns the old setting. */
static PyObject *
set_child_core_dumps(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0 || (!on && register_once_or_fail() < 0))
        return NULL;
    return PyBool_FromLong(!atomic_exchange(&no_child_cores, !on));
}

static PyObject *
set_enabled(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag);
    if (on < 0 || (on && register_once_or_fail() < 0))
        return NULL;
    return PyBool_FromLong(atomic_exchange(&enabled, on));
}

/* When enabled: finds the runtime if it is new, looks up the listed classes
   and, unless the process is restricted, forces the found ones. Outside any
   fork lock (at configuration time, and as the before-fork hook of os.fork),
   with the GIL released. Returns how many it forced. */
static PyObject *
force(PyObject *module, PyObject *unused)
{
    uint64_t forced = 0;
    if (!atomic_load(&enabled))
        return PyLong_FromLong(0);
    if (!atomic_load(&runtime_bound))
        LOCKED(find_runtime());
    if (!atomic_load(&runtime_bound) || !atomic_load(&work_left))
        return PyLong_FromLong(0);
    Py_BEGIN_ALLOW_THREADS
    atomic_fetch_add(&readers, 1);
    forced = work_on(atomic_load(&current));
    atomic_fetch_sub(&readers, 1);
    Py_END_ALLOW_THREADS
    return PyLong_FromUnsignedLongLong(forced);
}

/* A runtime string as str: the file-system encoding with surrogateescape,
   which never fails on bytes; None for NULL. */
static PyObject *
runtime_str(const char *text)
{
    if (!text)
        Py_RETURN_NONE;
    return PyUnicode_DecodeFSDefault(text);
}

static int
add_item(PyObject *dict, const char *key, PyObject *value)
{
    int result = value ? PyDict_SetItemString(dict, key, value) : -1;
    Py_XDECREF(value);
    return result;
}

static PyObject *
snapshot(PyObject *module, PyObject *unused)
{
    PyObject *result = PyDict_New(), *classes = PyDict_New();
    struct table *t;
    int blocked = atomic_load(&restricted), bound;
    size_t i;
    if (!result || !classes)
        goto fail;
    if (!atomic_load(&runtime_bound))
        LOCKED(find_runtime());
    bound = atomic_load(&runtime_bound);
    atomic_fetch_add(&readers, 1);
    t = atomic_load(&current);
    for (i = 0; t && i < t->count; i++) {
        struct entry *e = &t->entries[i];
        objc_class cls = atomic_load(&e->cls);
        if (!cls && bound && (cls = runtime.lookUpClass(e->name)) != NULL)
            atomic_store(&e->cls, cls); /* realized, never initialized */
        int state = atomic_load(&e->done) ? STATE_INITIALIZED
                    : !cls                ? STATE_NOT_LOADED
                    : blocked                                 ? STATE_BLOCKED
                                                              : STATE_PENDING;
        PyObject *name = PyUnicode_FromStringAndSize(e->name, (Py_ssize_t)e->length);
        PyObject *value = PyUnicode_FromString(state_names[state]);
        int failed = !name || !value || PyDict_SetItem(classes, name, value) < 0;
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (failed) {
            atomic_fetch_sub(&readers, 1);
            goto fail;
        }
    }
    atomic_fetch_sub(&readers, 1);
    if (add_item(result, "enabled", PyBool_FromLong(atomic_load(&enabled))) < 0 ||
        add_item(result, "restricted", runtime_str(blocked ? restricted_reason : NULL)) < 0 ||
        add_item(result, "child_core_dumps", PyBool_FromLong(!atomic_load(&no_child_cores))) < 0 ||
        add_item(result, "runtime",
                 runtime_str(atomic_load(&runtime_bound) ? runtime.path : NULL)) < 0 ||
        add_item(result, "runtime_missing",
                 runtime_str(atomic_load(&runtime_bound) ? NULL : runtime_missing)) < 0 ||
        add_item(result, "forcing_call",
                 runtime_str(!atomic_load(&runtime_bound) ? NULL
                             : runtime.sendInitialize ? "objc_send_initialize"
                                                      : "class_getMethodImplementation")) < 0 ||
        PyDict_SetItemString(result, "classes", classes) < 0 ||
        add_item(result, "forks", PyLong_FromUnsignedLongLong(atomic_load(&forks))) < 0 ||
        add_item(result, "forced_in_fork",
                 PyLong_FromUnsignedLongLong(atomic_load(&forced_in_fork))) < 0 ||
        add_item(result, "handler_last_ns",
                 PyLong_FromUnsignedLongLong(atomic_load(&handler_last_ns))) < 0 ||
        add_item(result, "handler_max_ns",
                 PyLong_FromUnsignedLongLong(atomic_load(&handler_max_ns))) < 0)
        goto fail;
    Py_DECREF(classes);
    return result;
fail:
    Py_XDECREF(classes);
    Py_XDECREF(result);
    return NULL;
}

/* ---- diagnostics: read-only, never in a fork ------------------------------ */

static objc_imp
class_initialize_imp(objc_class cls)
{
    objc_method m = runtime.getClassMethod(cls, runtime.initialize_sel);
    return m ? runtime.methodImplementation(m) : NULL;
}

/* One inspect() row. objc4's classHasTrivialInitialize: a root class, or a
   resolved +initialize that is nil or the root's (objc-initialize.mm). The
   methods are looked up, never sent: nothing is initialized. */
static PyObject *
describe_class(objc_class cls)
{
    objc_class root = cls, owner = NULL, c;
    objc_imp imp = class_initialize_imp(cls);
    const char *image = runtime.imageName ? runtime.imageName(cls) : NULL;
    Dl_info info;
    PyObject *row = PyDict_New();
    while (runtime.getSuperclass(root))
        root = runtime.getSuperclass(root);
    /* The defining class: the highest one that still resolves to imp. */
    for (c = cls; imp && c && class_initialize_imp(c) == imp; c = runtime.getSuperclass(c))
        owner = c;
    if (!image && dladdr(cls, &info)) /* the image holding the class structure */
        image = info.dli_fname;
    if (!row || add_item(row, "name", runtime_str(runtime.getName(cls))) < 0 ||
        add_item(row, "image", runtime_str(image)) < 0 ||
        add_item(row, "trivial",
                 PyBool_FromLong(cls == root || !imp || imp == class_initialize_imp(root))) < 0 ||
        add_item(row, "initializer", runtime_str(owner ? runtime.getName(owner) : NULL)) < 0) {
        Py_XDECREF(row);
        return NULL;
    }
    return row;
}

static int
append_row(PyObject *list, objc_class cls)
{
    PyObject *row = describe_class(cls);
    int result = row ? PyList_Append(list, row) : -1;
    Py_XDECREF(row);
    return result;
}

/* Every loaded class; the count can grow between the two calls (a class
   registered meanwhile), so retry until the buffer held them all. */
static objc_class *
all_classes(int *count)
{
    objc_class *classes = NULL;
    int room = 0;
    for (;;) {
        int wanted = runtime.getClassList(NULL, 0);
        objc_class *bigger;
        if (wanted < 0)
            wanted = 0;
        if (wanted > room) {
            room = wanted + 16;
            bigger = realloc(classes, sizeof(objc_class) * (size_t)room);
            if (!bigger) {
                free(classes);
                return NULL;
            }
            classes = bigger;
        }
        *count = runtime.getClassList(classes, room);
        if (*count <= room)
            return classes;
    }
}

/* inspect(names or None) -> list of {name, image, trivial, initializer} for
   the named classes that are loaded, or for every loaded class. */
static PyObject *
inspect(PyObject *module, PyObject *names)
{
    PyObject *result;
    if (names != Py_None && !PyTuple_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of str or None");
        return NULL;
    }
    if (!atomic_load(&runtime_bound))
        LOCKED(find_runtime());
    if (!(result = PyList_New(0)) || !atomic_load(&runtime_bound))
        return result;
    if (names != Py_None) {
        Py_ssize_t i, n = PyTuple_Size(names);
        for (i = 0; i < n; i++) {
            const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(names, i), NULL);
            objc_class cls = name ? runtime.lookUpClass(name) : NULL;
            if (!name || (cls && append_row(result, cls) < 0)) {
                Py_DECREF(result);
                return NULL;
            }
        }
    } else {
        int count = 0, i;
        objc_class *classes = all_classes(&count);
        if (!classes) {
            Py_DECREF(result);
            return PyErr_NoMemory();
        }
        for (i = 0; i < count && result; i++)
            if (append_row(result, classes[i]) < 0)
                Py_CLEAR(result);
        free(classes);
    }
    return result;
}

static PyMethodDef methods[] = {
    {"set_table", set_table, METH_VARARGS,
     "set_table(names, append=False): replace the class table, or append the names it lacks."},
    {"set_enabled", set_enabled, METH_O,
     "Enable or disable the fork handler (registered at first load); returns the old state."},
    {"set_child_core_dumps", set_child_core_dumps, METH_O,
     "Allow or forbid core dumps in forked children (RLIMIT_CORE 0 there); returns the old "
     "setting."},
    {"force", force, METH_NOARGS,
     "When enabled, run +initialize of the listed classes found, now, unless this process "
     "is restricted; returns how many. Releases the GIL."},
    {"snapshot", snapshot, METH_NOARGS, "The table, the runtime and the counters, as a dict."},
    {"inspect", inspect, METH_O,
     "{name, image, trivial, initializer} of the named loaded classes (a tuple), or of all (None)."},
    {NULL, NULL, 0, NULL},
};

/* Once per process, before any Python can configure anything. */
static void
first_load(long start_pid)
{
    const char *reason;
#ifndef __APPLE__
    single_threaded = dlsym(RTLD_DEFAULT, "__libc_single_threaded");
#endif
    if ((reason = restricted_at_load(start_pid)) != NULL) {
        restricted_reason = reason;
        atomic_store(&restricted, 1);
    }
    /* From the first load, not the first install(): a process that only
       imported objcprefork and then forked must still mark its child
       restricted. A failure is reported by the first set_enabled(). */
    pthread_once(&register_once, register_handlers);
}

static atomic_int loaded;

static int
module_exec(PyObject *module)
{
    if (!atomic_exchange(&loaded, 1)) { /* the first interpreter to load it */
        PyObject *pid = PySys_GetObject("_objcprefork_start_pid"); /* borrowed */
        long start_pid = pid && PyLong_Check(pid) ? PyLong_AsLong(pid) : 0;
        if (start_pid == -1 && PyErr_Occurred())
            PyErr_Clear();
        first_load(start_pid);
    }
    PyObject *states = Py_BuildValue("(ssss)", state_names[0], state_names[1], state_names[2],
                                     state_names[3]);
    int result = states ? PyModule_AddObjectRef(module, "STATES", states) : -1;
    Py_XDECREF(states);
    return result;
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, module_exec},
#ifdef Py_mod_multiple_interpreters
    /* All state is process-wide, behind atomics and config_lock. */
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "objcprefork._objcprefork",
    .m_doc = "Native core of objcprefork: the class table and the fork handlers.",
    .m_size = 0,
    .m_methods = methods,
    .m_slots = slots,
};

PyMODINIT_FUNC
PyInit__objcprefork(void)
{
    return PyModuleDef_Init(&module_def);
}
