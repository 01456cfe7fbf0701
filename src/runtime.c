/* Finding and binding the Objective-C runtime, the load signal, forcing one
   class, and the read-only queries of the diagnostics (docs/design.md,
   "The runtime"). Nothing here runs inside a fork: dlopen and dlsym take the
   loader's lock, which macOS 13+ holds across client prepare handlers. */
#define _GNU_SOURCE 1 /* dladdr, RTLD_DEFAULT, dl_iterate_phdr */
#include "core.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __APPLE__
#include <mach-o/dyld.h>
#include <sys/utsname.h>
#else
#include <link.h>
#endif

typedef void *objc_sel;
typedef void *objc_method;
typedef void (*objc_imp)(void);

struct runtime runtime;
atomic_int runtime_bound;
_Atomic(const char *) runtime_missing = "not looked for yet";
const char *diagnostics_missing = "no runtime is bound";

static struct {
    objc_imp (*getMethodImplementation)(objc_class, objc_sel); /* initializes */
    void (*sendInitialize)(objc_class); /* libobjc2's forcing call, else NULL */
    objc_sel self_sel;
} forcing;

/* Optional: forcing never needs them, and a runtime without one still binds. */
static struct {
    int (*getClassList)(objc_class *, int);
    const char *(*getName)(objc_class);
    objc_class (*getSuperclass)(objc_class);
    objc_method (*getClassMethod)(objc_class, objc_sel);
    objc_imp (*methodImplementation)(objc_method);
    const char *(*imageName)(objc_class); /* Apple and libobjc2 only */
    objc_sel initialize_sel;
} queries;

/* ---- the load signal --------------------------------------------------- */

/* Counts class registrations, bumped by a callback the runtime makes after it
   has registered an image's classes; the callback runs with the runtime's
   lock held, so it only counts. A pass that reads the count before looking
   up, and is repeated whenever it changed, never misses a class for good. */
static _Atomic uint64_t added;
static void (**gnu_hook)(objc_class, void *); /* GCC's and libobjc2's _objc_load_callback */
static void (*gnu_previous)(objc_class, void *);

static void
on_class_loaded(objc_class cls, void *category)
{
    atomic_fetch_add_explicit(&added, 1, memory_order_release);
    if (gnu_previous)
        gnu_previous(cls, category);
}

#ifdef __APPLE__
static void
on_image_loaded(const struct mach_header *header)
{
    (void)header;
    atomic_fetch_add_explicit(&added, 1, memory_order_release);
}
#endif

static uint64_t libraries_loaded(void);
static atomic_int just_hooked; /* the pass right after hooking must not settle */

/* Grows whenever the runtime signals new classes or a library is added: the
   library count backs the signal up where a loader swallows it (GCC's
   objc_send_load calls no callback while any class's superclass is
   unresolved; a loader may save, replace and restore the hook). On Linux
   both only grow (dlpi_adds counts additions), so their sum changes at any
   change. On macOS the image count falls at a dlclose, but objc4's signal
   comes for every image it maps, so an image that brings classes always
   moves the sum. */
uint64_t
classes_added(void)
{
    return atomic_load_explicit(&added, memory_order_acquire) + libraries_loaded();
}

int
first_pass_after_hooking(void)
{
    return atomic_exchange(&just_hooked, 0);
}

/* GNUstep's NSBundle sets _objc_load_callback for its own loads and clears it
   after: once our hook is gone, the signal can no longer be trusted. */
int
load_signal_intact(void)
{
    if (!runtime.load_signal)
        return 0;
    return !gnu_hook || *(void *volatile *)gnu_hook == (void *)on_class_loaded;
}

/* objc4's objc_addLoadImageFunc (runtime.h, macOS 10.15+) calls back "after
   ObjC has scanned and fixed up the image", and at once for images already
   loaded. GCC's libobjc calls _objc_load_callback after +load, with each
   class in its hash table (init.c, objc_send_load); libobjc2 once a class is
   resolved (class_table.c, objc_resolve_class), classes made by
   objc_registerClassPair too; objc4 and GCC's libobjc never see those.
   Hooked once per process: a fork child that binds again (its parent was
   binding when it forked) must not chain the hook to itself. A loader
   running while the hook is stored may miss it: the pass right after hooking
   never settles, so the next one looks again. */
static void
hook_loads(void *handle)
{
    static atomic_int hooked;
    if (atomic_exchange(&hooked, 1))
        return;
    atomic_store(&just_hooked, 1);
#ifdef __APPLE__
    void (*add_image_func)(void (*)(const struct mach_header *));
    *(void **)&add_image_func = dlsym(handle, "objc_addLoadImageFunc");
    if (add_image_func) {
        add_image_func(on_image_loaded);
        runtime.load_signal = "objc_addLoadImageFunc";
        return;
    }
#endif
    gnu_hook = dlsym(handle, "_objc_load_callback");
    if (gnu_hook && *gnu_hook != on_class_loaded) {
        gnu_previous = *gnu_hook;
        *gnu_hook = on_class_loaded;
        runtime.load_signal = "_objc_load_callback";
    }
}

/* ---- binding ------------------------------------------------------------ */

static void
force_by_lookup(objc_class cls)
{
    (void)forcing.getMethodImplementation(cls, forcing.self_sel);
}

static int
bind_symbols(void *handle, const char *path)
{
    void *h = dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
    objc_sel (*registerName)(const char *);
    static const char *const optional[] = {
        "objc_getClassList", "class_getName", "class_getSuperclass", "class_getClassMethod",
        "method_getImplementation"};
    void **slots[] = {(void **)&queries.getClassList, (void **)&queries.getName,
                      (void **)&queries.getSuperclass, (void **)&queries.getClassMethod,
                      (void **)&queries.methodImplementation};
    size_t i;
    if (!h)
        h = handle;
    *(void **)&runtime.lookUpClass = dlsym(h, "objc_lookUpClass");
    *(void **)&forcing.getMethodImplementation = dlsym(h, "class_getMethodImplementation");
    *(void **)&registerName = dlsym(h, "sel_registerName");
    if (!runtime.lookUpClass || !forcing.getMethodImplementation || !registerName)
        return 0;
    /* libobjc2's class_getMethodImplementation answers the forwarding IMP until
       the class has a dispatch table and never sends +initialize (sendmsg2.c);
       its exported objc_send_initialize does (dtable.c). */
    *(void **)&forcing.sendInitialize = dlsym(h, "objc_send_initialize");
    /* Class + "self": a selector every root class answers, so the lookup never
       reaches the resolver; the IMP is never called (design.md, "Forcing"). */
    forcing.self_sel = registerName("self");
    runtime.force = forcing.sendInitialize ? forcing.sendInitialize : force_by_lookup;
    runtime.forcing_call =
        forcing.sendInitialize ? "objc_send_initialize" : "class_getMethodImplementation";
    diagnostics_missing = NULL;
    for (i = 0; i < sizeof slots / sizeof slots[0]; i++)
        if (!(*slots[i] = dlsym(h, optional[i])) && !diagnostics_missing)
            diagnostics_missing = optional[i];
    *(void **)&queries.imageName = dlsym(h, "class_getImageName");
    queries.initialize_sel = registerName("initialize");
    snprintf(runtime.path, sizeof runtime.path, "%s", path);
    hook_loads(h);
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

#ifdef __APPLE__
static void *
open_loaded(const char *path)
{
    return dlopen(path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
}
#else
struct wanted {
    const char *name;
    char path[1024];
};

static int
match_loaded(struct dl_phdr_info *info, size_t size, void *data)
{
    struct wanted *wanted = data;
    const char *slash = info->dlpi_name ? strrchr(info->dlpi_name, '/') : NULL;
    (void)size;
    if (!slash || strcmp(slash + 1, wanted->name) != 0)
        return 0;
    snprintf(wanted->path, sizeof wanted->path, "%s", info->dlpi_name);
    return 1;
}

/* The library of that file name if it is loaded, even RTLD_LOCAL: found by
   its path among the loaded objects, so that no search of the library path
   and of ld.so.cache is made (a bare name costs that at every look). */
static void *
open_loaded(const char *name)
{
    struct wanted wanted = {name, ""};
    if (!dl_iterate_phdr(match_loaded, &wanted))
        return NULL;
    return dlopen(wanted.path, RTLD_LAZY | RTLD_LOCAL | RTLD_NOLOAD);
}
#endif

/* Symbols the process already sees first, then a runtime library already
   loaded, even RTLD_LOCAL (ctypes' default); RTLD_NOLOAD never loads one.
   config_lock held. */
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
        void *handle = open_loaded(runtime_libraries[i]);
        probe = handle ? dlsym(handle, "objc_lookUpClass") : NULL;
        if (probe && dladdr(probe, &info) && info.dli_fname && bind_symbols(handle, info.dli_fname))
            goto bound; /* the handle stays open: the runtime is never unloaded */
    }
    runtime_missing = "no Objective-C runtime is loaded in this process";
    return;
bound:
    runtime_missing = NULL;
    atomic_store_explicit(&runtime_bound, 1, memory_order_release);
}

/* Libraries loaded: it changes when one is added (on macOS, where it is the
   current count, libobjc is loaded from the start anyway), so an unchanged
   count means no runtime can have appeared since the last look. Read before
   looking: a library counted but still being opened holds the loader's lock,
   which find_runtime's dlopen then waits for. */
#ifdef __APPLE__
static uint64_t
libraries_loaded(void)
{
    return _dyld_image_count();
}
#else
static int
first_object(struct dl_phdr_info *info, size_t size, void *data)
{
    *(uint64_t *)data = size >= offsetof(struct dl_phdr_info, dlpi_subs) ? info->dlpi_adds : 0;
    return 1;
}

static uint64_t
libraries_loaded(void)
{
    uint64_t adds = 0;
    dl_iterate_phdr(first_object, &adds);
    return adds;
}
#endif

static _Atomic uint64_t libraries_seen = UINT64_MAX;

/* With no runtime loaded, the usual case on Linux, this costs one count, not
   a search of the loader's cache. Never called inside a fork. */
int
ensure_runtime(void)
{
    uint64_t libraries;
    if (atomic_load_explicit(&runtime_bound, memory_order_acquire))
        return 1;
    libraries = libraries_loaded();
    if (libraries == atomic_load(&libraries_seen))
        return 0;
    pthread_mutex_lock(&config_lock);
    find_runtime();
    atomic_store(&libraries_seen, libraries);
    pthread_mutex_unlock(&config_lock);
    return atomic_load(&runtime_bound);
}

/* ---- diagnostics: read-only, never in a fork ------------------------------ */

static objc_imp
class_initialize_imp(objc_class cls)
{
    objc_method m = queries.getClassMethod(cls, queries.initialize_sel);
    return m ? queries.methodImplementation(m) : NULL;
}

/* objc4's classHasTrivialInitialize: a root class, or a resolved +initialize
   that is nil or the root's (objc-initialize.mm). The methods are looked up,
   never sent: nothing is initialized. */
int
describe_class(objc_class cls, struct class_row *row)
{
    objc_class root = cls, owner = NULL, c;
    objc_imp imp;
    Dl_info info;
    if (diagnostics_missing)
        return 0;
    imp = class_initialize_imp(cls);
    while (queries.getSuperclass(root))
        root = queries.getSuperclass(root);
    /* The defining class: the highest one that still resolves to imp. */
    for (c = cls; imp && c && class_initialize_imp(c) == imp; c = queries.getSuperclass(c))
        owner = c;
    row->name = queries.getName(cls);
    row->image = queries.imageName ? queries.imageName(cls) : NULL;
    if (!row->image && dladdr(cls, &info)) /* the image holding the class structure */
        row->image = info.dli_fname;
    row->trivial = cls == root || !imp || imp == class_initialize_imp(root);
    row->initializer = owner ? queries.getName(owner) : NULL;
    return 1;
}

/* Every loaded class; the count can grow between the two calls (a class
   registered meanwhile), so retry until the buffer held them all. */
objc_class *
all_classes(int *count)
{
    objc_class *classes = NULL;
    int room = 0;
    *count = 0;
    if (diagnostics_missing)
        return NULL;
    for (;;) {
        int wanted = queries.getClassList(NULL, 0);
        objc_class *bigger;
        if (wanted < 0)
            wanted = 0;
        if (wanted >= room) {
            room = wanted + 16;
            bigger = realloc(classes, sizeof(objc_class) * (size_t)room);
            if (!bigger) {
                free(classes);
                return NULL;
            }
            classes = bigger;
        }
        *count = queries.getClassList(classes, room);
        if (*count <= room)
            return classes;
    }
}
