/* objcprefork._objcprefork: run Objective-C +initialize for listed classes
   before every fork(), so a child of a threaded parent finds them initialized.

   One process-wide table of classes, guarded by one lock, read by a
   pthread_atfork prepare handler. The handler uses no Python API and allocates
   nothing of its own; the lock it takes is released in the parent handler and
   reset in the child handler, so no child inherits it held. The Objective-C
   runtime is found at run time among what is already loaded: nothing links to
   it and nothing here loads it. See shared/reference/objc-fork-safety.md. */
#define _GNU_SOURCE 1 /* dladdr, RTLD_DEFAULT, dl_iterate_phdr; as pyconfig.h has it */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifdef __APPLE__
#include <mach-o/dyld.h>
#include <sys/utsname.h>
#else
#include <link.h>
#endif

typedef void *objc_class;
typedef void *objc_sel;

/* ---- the runtime, found once, never lost (ObjC images are never unloaded) */

static struct {
    objc_class (*lookUpClass)(const char *);  /* realizes, never initializes */
    void *(*getMethodImplementation)(objc_class, objc_sel); /* initializes */
    objc_sel self_sel;
    char path[1024];
    const char *missing_reason;
    void *handle;
} runtime = {.missing_reason = "not looked for yet"};

/* Read-only queries for the diagnostics, none of which runs +initialize:
   bound on first use, never used by the fork handler. */
static struct {
    int (*getClassList)(objc_class *, int);
    const char *(*getName)(objc_class);
    objc_class (*getSuperclass)(objc_class);
    objc_class (*getMetaClass)(const char *);
    void **(*copyMethodList)(objc_class, unsigned int *);
    objc_sel (*methodName)(void *);
    const char *(*selName)(objc_sel);
    const char *(*imageName)(objc_class); /* Apple and libobjc2 only */
} query;

static const char *const runtime_libraries[] = {
#ifdef __APPLE__
    "/usr/lib/libobjc.A.dylib",
#else
    "libobjc.so.4",   /* GCC's libobjc, which GNUstep on Debian also uses */
    "libobjc.so.4.6", /* GNUstep's libobjc2 */
#endif
};

static int
bind_runtime(void *handle)
{
    objc_sel (*sel_registerName)(const char *);
    Dl_info info;

    *(void **)&runtime.lookUpClass = dlsym(handle, "objc_lookUpClass");
    *(void **)&runtime.getMethodImplementation =
        dlsym(handle, "class_getMethodImplementation");
    *(void **)&sel_registerName = dlsym(handle, "sel_registerName");
    if (!runtime.lookUpClass || !runtime.getMethodImplementation || !sel_registerName) {
        runtime.lookUpClass = NULL;
        return 0;
    }
    /* Class + "self": a selector every root class answers, so the lookup never
       reaches the resolver (reference, part 3). */
    runtime.self_sel = sel_registerName("self");
    runtime.handle = handle;
    if (dladdr(*(void **)&runtime.lookUpClass, &info) && info.dli_fname)
        snprintf(runtime.path, sizeof runtime.path, "%s", info.dli_fname);
    else
        snprintf(runtime.path, sizeof runtime.path, "(unknown image)");
    runtime.missing_reason = NULL;
    return 1;
}

#ifdef __APPLE__
static int
enforcing_macos(void)
{
    struct utsname name;
    /* Darwin 17 is macOS 10.13, the first to enforce. On 10.12 client prepare
       handlers ran after the runtime took its locks: stay inert there. */
    return uname(&name) != 0 || atoi(name.release) >= 17;
}
#endif

/* Symbols the process already sees first, then a runtime library that is
   already loaded, even RTLD_LOCAL (ctypes' default); RTLD_NOLOAD never loads.
   The handler calls this only while no runtime is bound, and only after an
   image was loaded (on macOS libobjc is bound at import, so never there); a
   failed lookup then costs the loader's dlerror string, the one allocation a
   fork can see that is not the runtime's own. */
static void
find_runtime(void)
{
    size_t i;
    if (runtime.lookUpClass)
        return;
#ifdef __APPLE__
    if (!enforcing_macos()) {
        runtime.missing_reason = "macOS before 10.13 does not enforce fork safety";
        return;
    }
#endif
    if (bind_runtime(RTLD_DEFAULT))
        return;
    for (i = 0; i < sizeof runtime_libraries / sizeof runtime_libraries[0]; i++) {
        void *handle = dlopen(runtime_libraries[i], RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
        if (handle && bind_runtime(handle))
            return; /* the handle stays open: the runtime is never unloaded */
    }
    runtime.missing_reason = "no Objective-C runtime is loaded in this process";
}

/* A number that changes whenever an image is loaded: a listed class that was
   missing can only appear then, so the handler looks again only then. */
#ifdef __APPLE__
static uint64_t
image_generation(void)
{
    return _dyld_image_count();
}
#else
static int
read_adds(struct dl_phdr_info *info, size_t size, void *adds)
{
    if (size >= offsetof(struct dl_phdr_info, dlpi_adds) + sizeof info->dlpi_adds)
        *(uint64_t *)adds = (uint64_t)info->dlpi_adds;
    return 1; /* the first image carries the process-wide counter */
}

static uint64_t
image_generation(void)
{
    uint64_t adds = 0;
    dl_iterate_phdr(read_adds, &adds);
    return adds;
}
#endif

/* ---- the class table and its lock ---------------------------------------- */

enum class_state { STATE_PENDING = 0, STATE_INITIALIZED = 1, STATE_NOT_LOADED = 2 };

struct entry {
    const char *name; /* points into the table's own allocation */
    objc_class cls;   /* cached once found; classes are never unloaded */
    int done;         /* +initialize forced */
};

struct table {
    size_t count;
    struct entry entries[];
};

/* Guarded by table_mutex. What every fork reads sits in one cache line: once
   unresolved and ready are zero, a fork reads nothing else. */
static struct {
    struct table *table;
    size_t unresolved;   /* entries whose class is not found yet */
    size_t ready;        /* entries found but not forced yet */
    uint64_t generation; /* image_generation() when unresolved entries were last looked up */
    int enabled;
    uint64_t forks, forced_in_fork, last_ns, max_ns;
} state __attribute__((aligned(64)));

static pthread_mutex_t table_mutex = PTHREAD_MUTEX_INITIALIZER;
/* The owner lets a thread take the lock again (a +initialize that forks) and
   lets the child handler know what the forking thread held. */
static _Atomic uintptr_t table_owner;
static unsigned table_depth; /* touched by the owner only */

static int
held_by_this_thread(void)
{
    return atomic_load(&table_owner) == (uintptr_t)pthread_self();
}

static void
lock_table(void)
{
    if (held_by_this_thread()) {
        table_depth++;
        return;
    }
    pthread_mutex_lock(&table_mutex);
    atomic_store(&table_owner, (uintptr_t)pthread_self());
    table_depth = 1;
}

static void
unlock_table(void)
{
    if (--table_depth == 0) {
        atomic_store(&table_owner, 0);
        pthread_mutex_unlock(&table_mutex);
    }
}

/* Looks up entries still missing; with check_generation, only when an image
   was loaded since the last look. Lock held. */
static void
resolve(int check_generation)
{
    size_t i;
    uint64_t generation = image_generation();
    if (check_generation && generation == state.generation)
        return;
    state.generation = generation;
    find_runtime();
    if (!runtime.lookUpClass)
        return;
    for (i = 0; i < state.table->count && state.unresolved; i++) {
        struct entry *e = &state.table->entries[i];
        if (!e->cls && (e->cls = runtime.lookUpClass(e->name)) != NULL) {
            state.unresolved--;
            state.ready++;
        }
    }
}

/* Runs +initialize of every found, unforced entry; returns how many. Lock held. */
static size_t
force_ready(void)
{
    size_t i, forced = 0;
    for (i = 0; i < state.table->count && state.ready; i++) {
        struct entry *e = &state.table->entries[i];
        if (e->cls && !e->done) {
            /* The IMP is only looked up, never called: calling it would run
               +initialize a second time. */
            (void)runtime.getMethodImplementation(e->cls, runtime.self_sel);
            if (!e->done) { /* a fork inside that +initialize may have marked it */
                e->done = 1;
                state.ready--;
                forced++;
            }
        }
    }
    return forced;
}

static uint64_t
now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- the fork handlers: no Python API, no allocation of ours ------------- */

static void
prepare(void)
{
    uint64_t start, elapsed;
    lock_table(); /* released by after_fork_parent / after_fork_child */
    state.forks++;
    if (!state.enabled)
        return;
    start = now_ns();
    if (state.unresolved)
        resolve(1);
    if (state.ready)
        state.forced_in_fork += force_ready();
    elapsed = now_ns() - start;
    state.last_ns = elapsed;
    if (elapsed > state.max_ns)
        state.max_ns = elapsed;
}

static void
after_fork_parent(void)
{
    unlock_table();
}

static void
after_fork_child(void)
{
    /* Only the forking thread lives on. Unlocking a mutex locked by a thread
       of the parent is not portable (owner checks), so start from a fresh one,
       taken again if an outer frame of this thread still holds it. */
    unsigned depth = table_depth - 1;
    pthread_mutex_init(&table_mutex, NULL);
    if (depth) {
        pthread_mutex_lock(&table_mutex);
        table_depth = depth;
    } else {
        table_depth = 0;
        atomic_store(&table_owner, 0);
    }
}

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_error = -1;

static void
register_handlers(void)
{
    register_error = pthread_atfork(prepare, after_fork_parent, after_fork_child);
}

/* ---- diagnostics: read-only, never in a fork ------------------------------ */

static int lock_table_from_python(void);

static int
bind_queries(void)
{
    static const char *const names[] = {
        "objc_getClassList", "class_getName", "class_getSuperclass", "objc_getMetaClass",
        "class_copyMethodList", "method_getName", "sel_getName",
    };
    void **slots[] = {
        (void **)&query.getClassList, (void **)&query.getName, (void **)&query.getSuperclass,
        (void **)&query.getMetaClass, (void **)&query.copyMethodList,
        (void **)&query.methodName, (void **)&query.selName,
    };
    size_t i;
    if (query.getClassList)
        return 0;
    for (i = 0; i < sizeof names / sizeof names[0]; i++) {
        if ((*slots[i] = dlsym(runtime.handle, names[i])) == NULL) {
            query.getClassList = NULL;
            PyErr_Format(PyExc_RuntimeError, "the Objective-C runtime at %s lacks %s",
                         runtime.path, names[i]);
            return -1;
        }
    }
    *(void **)&query.imageName = dlsym(runtime.handle, "class_getImageName");
    return 0;
}

/* Whether cls's metaclass itself (not a superclass) implements +initialize. */
static int
defines_initialize(objc_class cls)
{
    unsigned int count = 0, i;
    int found = 0;
    void **methods = query.copyMethodList(query.getMetaClass(query.getName(cls)), &count);
    for (i = 0; i < count && !found; i++)
        found = strcmp(query.selName(query.methodName(methods[i])), "initialize") == 0;
    free(methods);
    return found;
}

/* The class whose +initialize runs for cls (cls or a superclass), or NULL.
   Apple's runtime calls +initialize trivial when that is NULL or a root class;
   looking at method lists, unlike messaging, initializes nothing. */
static objc_class
initialize_owner(objc_class cls)
{
    for (; cls; cls = query.getSuperclass(cls))
        if (defines_initialize(cls))
            return cls;
    return NULL;
}

static PyObject *
describe_class(objc_class cls)
{
    objc_class owner = initialize_owner(cls);
    const char *image = query.imageName ? query.imageName(cls) : NULL;
    Dl_info info;
    if (!image && dladdr(cls, &info)) /* the image holding the class structure */
        image = info.dli_fname;
    return Py_BuildValue("(szOz)", query.getName(cls), image,
                         (!owner || !query.getSuperclass(owner)) ? Py_True : Py_False,
                         owner ? query.getName(owner) : NULL);
}

/* inspect(names or None) -> list of (name, image, trivial, initialize owner)
   for the named classes that are loaded, or for every loaded class. */
static PyObject *
inspect(PyObject *module, PyObject *names)
{
    PyObject *result;
    if (names != Py_None && !PyTuple_Check(names)) {
        PyErr_SetString(PyExc_TypeError, "expected a tuple of str or None");
        return NULL;
    }
    if (lock_table_from_python() < 0)
        return NULL;
    find_runtime();
    unlock_table();
    if (!runtime.lookUpClass)
        return PyList_New(0);
    if (bind_queries() < 0 || !(result = PyList_New(0)))
        return NULL;
    if (names != Py_None) {
        Py_ssize_t i, n = PyTuple_Size(names);
        for (i = 0; i < n; i++) {
            const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(names, i), NULL);
            objc_class cls = name ? runtime.lookUpClass(name) : NULL;
            PyObject *item = cls ? describe_class(cls) : NULL;
            if (!name || (cls && (!item || PyList_Append(result, item) < 0))) {
                Py_XDECREF(item);
                Py_DECREF(result);
                return NULL;
            }
            Py_XDECREF(item);
        }
    } else {
        int count = query.getClassList(NULL, 0), i;
        objc_class *classes = malloc(sizeof(objc_class) * (size_t)(count > 0 ? count : 1));
        if (!classes) {
            Py_DECREF(result);
            return PyErr_NoMemory();
        }
        count = query.getClassList(classes, count);
        for (i = 0; i < count; i++) {
            PyObject *item = describe_class(classes[i]);
            if (!item || PyList_Append(result, item) < 0) {
                Py_XDECREF(item);
                Py_CLEAR(result);
                break;
            }
            Py_DECREF(item);
        }
        free(classes);
    }
    return result;
}

/* ---- the Python side ----------------------------------------------------- */

/* Takes the table lock from Python without ever waiting for it while holding
   the GIL: the handler may hold it while a +initialize needs the GIL. */
static int
lock_table_from_python(void)
{
    unsigned spins = 0;
    if (held_by_this_thread()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "objcprefork cannot be reconfigured from inside +initialize");
        return -1;
    }
    while (pthread_mutex_trylock(&table_mutex) != 0) {
        Py_BEGIN_ALLOW_THREADS
        if (++spins < 100) {
            sched_yield();
        } else {
            struct timespec pause = {0, 100000};
            nanosleep(&pause, NULL);
        }
        Py_END_ALLOW_THREADS
    }
    atomic_store(&table_owner, (uintptr_t)pthread_self());
    table_depth = 1;
    return 0;
}

static const struct entry *
find_entry(const struct table *t, const char *name)
{
    size_t i;
    for (i = 0; t && i < t->count; i++)
        if (strcmp(t->entries[i].name, name) == 0)
            return &t->entries[i];
    return NULL;
}

/* Builds a table from a tuple of str, keeping what the old one knew. */
static struct table *
build_table(PyObject *names, const struct table *old)
{
    Py_ssize_t n = PyTuple_Size(names), i;
    size_t bytes = 0, used = 0;
    struct table *t;
    char *strings;

    if (n < 0)
        return NULL;
    for (i = 0; i < n; i++) {
        Py_ssize_t len;
        if (!PyUnicode_AsUTF8AndSize(PyTuple_GetItem(names, i), &len))
            return NULL;
        bytes += (size_t)len + 1;
    }
    t = malloc(sizeof *t + (size_t)n * sizeof(struct entry) + bytes);
    if (!t) {
        PyErr_NoMemory();
        return NULL;
    }
    strings = (char *)&t->entries[n];
    t->count = (size_t)n;
    for (i = 0; i < n; i++) {
        Py_ssize_t len;
        const char *name = PyUnicode_AsUTF8AndSize(PyTuple_GetItem(names, i), &len);
        struct entry *e = &t->entries[i];
        const struct entry *known = find_entry(old, name);
        memcpy(strings + used, name, (size_t)len + 1);
        e->name = strings + used;
        used += (size_t)len + 1;
        e->cls = known ? known->cls : NULL;
        e->done = known ? known->done : 0;
    }
    return t;
}

/* Makes fresh the table: counts what is left to do, looks up what is missing.
   Lock held, so no handler can be reading the old one. */
static void
adopt(struct table *fresh)
{
    size_t i;
    free(state.table);
    state.table = fresh;
    state.unresolved = state.ready = 0;
    for (i = 0; i < fresh->count; i++) {
        if (!fresh->entries[i].cls)
            state.unresolved++;
        else if (!fresh->entries[i].done)
            state.ready++;
    }
    resolve(0);
}

/* The names of t followed by those of names it lacks, as a new tuple. */
static PyObject *
appended(const struct table *t, PyObject *names)
{
    Py_ssize_t i, n = PyTuple_Size(names), kept = 0, count = t ? (Py_ssize_t)t->count : 0;
    PyObject *result = PyTuple_New(count + n), *item;
    for (i = 0; result && i < count + n; i++) {
        if (i < count) {
            item = PyUnicode_FromString(t->entries[i].name);
        } else {
            item = PyTuple_GetItem(names, i - count);
            const char *name = PyUnicode_AsUTF8AndSize(item, NULL);
            if (!name) {
                Py_CLEAR(result);
                break;
            }
            if (find_entry(t, name))
                continue;
            Py_INCREF(item);
        }
        if (!item) {
            Py_CLEAR(result);
            break;
        }
        PyTuple_SetItem(result, kept++, item);
    }
    if (result && kept < count + n) {
        PyObject *shorter = PyTuple_GetSlice(result, 0, kept);
        Py_DECREF(result);
        result = shorter;
    }
    return result;
}

static PyObject *
set_table(PyObject *module, PyObject *args)
{
    PyObject *names, *merged = NULL;
    struct table *fresh = NULL;
    int append = 0;
    if (!PyArg_ParseTuple(args, "O!|p:set_table", &PyTuple_Type, &names, &append))
        return NULL;
    for (Py_ssize_t i = 0; i < PyTuple_Size(names); i++) {
        if (!PyUnicode_Check(PyTuple_GetItem(names, i))) {
            PyErr_SetString(PyExc_TypeError, "class names must be str");
            return NULL;
        }
    }
    if (lock_table_from_python() < 0)
        return NULL;
    /* Reading and replacing under one lock: concurrent appends lose nothing. */
    if (!append || (merged = appended(state.table, names)) != NULL)
        fresh = build_table(append ? merged : names, state.table);
    if (fresh)
        adopt(fresh);
    unlock_table();
    Py_XDECREF(merged);
    if (!fresh)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
set_enabled(PyObject *module, PyObject *flag)
{
    int on = PyObject_IsTrue(flag), was;
    if (on < 0)
        return NULL;
    if (on) {
        pthread_once(&register_once, register_handlers);
        if (register_error != 0) {
            errno = register_error;
            return PyErr_SetFromErrno(PyExc_OSError);
        }
    }
    if (lock_table_from_python() < 0)
        return NULL;
    was = state.enabled;
    state.enabled = on;
    unlock_table();
    return PyBool_FromLong(was);
}

/* When enabled, forces every found class now, in the parent, outside any
   fork. set_table has just looked them up: no second look here. */
static PyObject *
force(PyObject *module, PyObject *unused)
{
    if (lock_table_from_python() < 0)
        return NULL;
    if (state.enabled && state.ready)
        force_ready();
    unlock_table();
    Py_RETURN_NONE;
}

static PyObject *
snapshot(PyObject *module, PyObject *unused)
{
    PyObject *classes, *result = NULL;
    size_t i, count;

    if (lock_table_from_python() < 0)
        return NULL;
    find_runtime();
    count = state.table ? state.table->count : 0;
    classes = PyTuple_New((Py_ssize_t)count);
    for (i = 0; classes && i < count; i++) {
        const struct entry *e = &state.table->entries[i];
        int state = e->done ? STATE_INITIALIZED : e->cls ? STATE_PENDING : STATE_NOT_LOADED;
        PyObject *item = Py_BuildValue("(si)", e->name, state);
        if (!item) {
            Py_CLEAR(classes);
            break;
        }
        PyTuple_SetItem(classes, (Py_ssize_t)i, item);
    }
    if (classes)
        result = Py_BuildValue(
            "{sOszszsNsKsKsKsK}", "enabled", state.enabled ? Py_True : Py_False,
            "runtime", runtime.lookUpClass ? runtime.path : NULL, "runtime_missing",
            runtime.missing_reason, "classes", classes, "forks", (unsigned long long)state.forks,
            "forced_in_fork", (unsigned long long)state.forced_in_fork,
            "handler_last_ns", (unsigned long long)state.last_ns,
            "handler_max_ns", (unsigned long long)state.max_ns);
    unlock_table();
    return result;
}

static PyMethodDef methods[] = {
    {"set_table", set_table, METH_VARARGS,
     "set_table(names, append=False): replace the class table, or append the names it lacks."},
    {"set_enabled", set_enabled, METH_O,
     "Enable or disable the fork handler (registered on first enable); returns the old state."},
    {"force", force, METH_NOARGS,
     "When enabled, run +initialize of every listed class found, now."},
    {"snapshot", snapshot, METH_NOARGS, "The table, the runtime and the counters, as a dict."},
    {"inspect", inspect, METH_O,
     "(name, image, trivial, owner) of the named loaded classes (a tuple), or of all (None)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot slots[] = {
#ifdef Py_mod_multiple_interpreters
    /* All state is process-wide and guarded by its own lock. */
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
