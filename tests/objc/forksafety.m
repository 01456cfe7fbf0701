/* An emulation of Apple's +initialize fork-safety enforcement on GCC's libobjc.

   It follows objc4 (objc-os.mm, objc-initialize.mm; see docs/design.md,
   "Apple's rule" and "What the emulation mirrors"):
   - whether the process was ever threaded is read after every client prepare
     handler, as _objc_atfork_prepare samples it after them: with glibc, whose
     __libc_single_threaded has the "ever created a thread" meaning of
     pthread_is_threaded_np and keeps it in the child, in the child handler,
     whatever the load order; elsewhere a prepare handler remembers a thread
     alive at a fork (then the order of loading matters: docs/design.md);
   - in the child of a threaded parent a sticky flag is set, never reset, so
     grandchildren inherit it;
   - in such a child every non-trivial +initialize that has not run yet (its
     own, or inherited from a non-root class) prints Apple's two lines and
     aborts, for classes made by objc_allocateClassPair there too (the
     emulation interposes objc_registerClassPair: forkprobe loads it
     RTLD_GLOBAL); root classes and classes whose +initialize is the root's
     never do; as objc4, it keeps the lines in memory (its crash
     annotations) and calls objc_initializeAfterForkError between them;
   - OBJC_DISABLE_INITIALIZE_FORK_SAFETY is read once, at load, with the
     values of the objc4 that FORKSAFETY_OBJC4 names (default 951.1): only
     "YES" below 876, the lenient words from 876, the fault words from 940.4;
     ignored in a set-id (AT_SECURE) process.

   GCC's runtime calls +initialize only for classes not yet initialized, so
   replacing +initialize of every non-trivial class in the child makes exactly
   the not-yet-initialized ones abort. */
#define _GNU_SOURCE /* secure_getenv */
#include <dlfcn.h>
#include <objc/runtime.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#ifdef __GLIBC__
#include <sys/single_threaded.h>
#else
#include <dirent.h>
#endif

static int enforcement_disabled;
static int print_initialize;
static int fork_is_multithreaded;
static int multithreaded_fork_child;
static void (*previous_load_callback)(Class, struct objc_category *);

/* objc4 keeps its fatal message in the crash annotations (CRSetCrashLogMessage,
   through _objc_inform_now_and_on_crash and _objc_fatal), so it lies in the
   process's memory and its core file: here, a global buffer (a global, so no
   store to it is optimized away). */
char forksafety_crash_message[1024];

/* The function Apple's message tells to break on: objc4 calls it after the
   first line (already in the annotations) and before the fatal one. */
__attribute__((noinline)) void
objc_initializeAfterForkError(Class cls)
{
    (void)cls;
    __asm__ volatile("" ::: "memory"); /* keeps the call, and so the breakpoint */
}

static void
refuse_initialize(id self, SEL _cmd)
{
    const char *name = class_getName((Class)self);
    int pid = (int)getpid();
    size_t used;
    (void)_cmd;
    if (print_initialize) /* performForkChildInitialize's log line */
        fprintf(stderr,
                "objc[%d]: INITIALIZE: thread %p: refusing to call +[%s initialize] in fork() "
                "child process because it may have been in progress when fork() was called\n",
                pid, (void *)pthread_self(), name);
    snprintf(forksafety_crash_message, sizeof forksafety_crash_message,
             "objc[%d]: +[%s initialize] may have been in progress in another thread "
             "when fork() was called.\n", pid, name);
    fputs(forksafety_crash_message, stderr);
    fflush(stderr);
    objc_initializeAfterForkError((Class)self);
    used = strlen(forksafety_crash_message);
    snprintf(forksafety_crash_message + used, sizeof forksafety_crash_message - used,
             "objc[%d]: +[%s initialize] may have been in progress in another thread "
             "when fork() was called. We cannot safely call it or ignore it in the "
             "fork() child process. Crashing instead. Set a breakpoint on "
             "objc_initializeAfterForkError to debug.\n", pid, name);
    fputs(forksafety_crash_message + used, stderr);
    fflush(stderr);
    abort();
}

/* OBJC_PRINT_INITIALIZE_METHODS=YES: objc4 logs every +initialize it sends
   (objc-initialize.mm, initializeNonMetaClass), trivial ones included, as
   "objc[PID]: INITIALIZE: thread 0x...: calling +[X initialize]". Here every
   class that defines +initialize gets a logging trampoline; a subclass that
   inherits one goes through its definer's, with self the subclass, as objc4
   sends +initialize to the superclass's method again.
   One difference, on purpose: the trampolines are put in fork children only,
   so the parent's method lists stay as objc4 leaves them, for what objcprefork
   inspects there (trivial or not). The parent's own lines are not printed;
   only children's are needed to learn what a parent must force. */
static struct wrapped { Class cls; IMP original; } *wrapped;
static size_t wrapped_count, wrapped_room;

static IMP
original_initialize(Class cls)
{
    size_t i;
    for (; cls != Nil; cls = class_getSuperclass(cls))
        for (i = 0; i < wrapped_count; i++)
            if (wrapped[i].cls == cls)
                return wrapped[i].original;
    return NULL;
}

static void
logging_initialize(id self, SEL _cmd)
{
    IMP original = original_initialize((Class)self);
    fprintf(stderr, "objc[%d]: INITIALIZE: thread %p: calling +[%s initialize]\n",
            (int)getpid(), (void *)pthread_self(), class_getName((Class)self));
    if (original)
        ((void (*)(id, SEL))original)(self, _cmd);
    fprintf(stderr, "objc[%d]: INITIALIZE: thread %p: finished +[%s initialize]\n",
            (int)getpid(), (void *)pthread_self(), class_getName((Class)self));
}

static IMP
class_initialize_imp(Class cls)
{
    Method m = class_getClassMethod(cls, sel_registerName("initialize"));
    IMP imp = m ? method_getImplementation(m) : NULL;
    return imp == (IMP)logging_initialize ? original_initialize(cls) : imp;
}

/* objc4's classHasTrivialInitialize (objc-initialize.mm): a root class, or
   one whose resolved +initialize is nil or pointer-equal to the root's. */
static int
has_trivial_initialize(Class cls)
{
    Class root = cls;
    IMP imp;
    while (class_getSuperclass(root) != Nil)
        root = class_getSuperclass(root);
    imp = class_initialize_imp(cls);
    return root == cls || imp == NULL || imp == class_initialize_imp(root);
}

static int
defines_class_initialize(Class cls)
{
    unsigned int count = 0, i;
    int found = 0;
    Method *methods = class_copyMethodList(object_getClass((id)cls), &count);
    for (i = 0; i < count && !found; i++)
        found = strcmp(sel_getName(method_getName(methods[i])), "initialize") == 0;
    free(methods);
    return found;
}

static void
arm_class(Class cls)
{
    Class meta = object_getClass((id)cls);
    SEL initialize = sel_registerName("initialize");
    if (has_trivial_initialize(cls))
        return;
    if (defines_class_initialize(cls))
        class_replaceMethod(meta, initialize, (IMP)refuse_initialize, "v@:");
    else
        class_addMethod(meta, initialize, (IMP)refuse_initialize, "v@:");
}

static void
wrap_for_logging(Class cls)
{
    SEL initialize = sel_registerName("initialize");
    Method m;
    if (!defines_class_initialize(cls) || !(m = class_getClassMethod(cls, initialize)) ||
        method_getImplementation(m) == (IMP)logging_initialize)
        return;
    if (wrapped_count == wrapped_room) {
        wrapped_room = wrapped_room ? 2 * wrapped_room : 256;
        if (!(wrapped = realloc(wrapped, wrapped_room * sizeof *wrapped)))
            abort();
    }
    wrapped[wrapped_count].cls = cls;
    wrapped[wrapped_count++].original = method_getImplementation(m);
    class_replaceMethod(object_getClass((id)cls), initialize, (IMP)logging_initialize, "v@:");
}

static void
log_loaded_class(Class cls, struct objc_category *category)
{
    if (previous_load_callback)
        previous_load_callback(cls, category);
    if (category == NULL)
        wrap_for_logging(cls);
}

/* Classes loaded into the child after fork never ran +initialize in the
   parent: Apple refuses them too. */
static void (*arm_previous_callback)(Class, struct objc_category *);

static void
arm_loaded_class(Class cls, struct objc_category *category)
{
    if (arm_previous_callback)
        arm_previous_callback(cls, category);
    if (category == NULL)
        arm_class(cls);
}

/* Calls visit for every class loaded now. */
static void
for_each_class(void (*visit)(Class))
{
    int count = objc_getClassList(NULL, 0), i;
    Class *classes = malloc(sizeof(Class) * (size_t)(count > 0 ? count : 1));
    if (classes == NULL)
        abort();
    count = objc_getClassList(classes, count);
    for (i = 0; i < count; i++)
        visit(classes[i]);
    free(classes);
}

/* Puts callback first in GCC's chain of load callbacks, once per process
   lineage (the flag survives fork, as the chain does). */
static void
hook_loads(int *hooked, void (*callback)(Class, struct objc_category *),
           void (**previous)(Class, struct objc_category *))
{
    if (*hooked)
        return;
    *hooked = 1;
    *previous = _objc_load_callback;
    _objc_load_callback = callback;
}

static int arm_hooked, log_hooked;

static void
arm_all_classes(void)
{
    for_each_class(arm_class);
    hook_loads(&arm_hooked, arm_loaded_class, &arm_previous_callback);
}

#ifdef __GLIBC__
static int
ever_threaded(void)
{
    return !__libc_single_threaded; /* glibc: "has ever created a thread" */
}
#else
/* Other libcs (musl) keep no such flag: threads alive now, remembered. */
static int
ever_threaded(void)
{
    static int seen;
    int tasks = 0;
    DIR *dir = opendir("/proc/self/task");
    if (dir) {
        while (readdir(dir))
            tasks++;
        closedir(dir);
    }
    return seen = seen || tasks > 3; /* ".", ".." and this thread */
}
#endif

#ifdef __GLIBC__
#define prepare NULL /* the child reads the flag, after every prepare handler */
#else
static void
prepare(void)
{
    fork_is_multithreaded = ever_threaded();
}
#endif

static void
log_all_classes(void)
{
    for_each_class(wrap_for_logging);
    hook_loads(&log_hooked, log_loaded_class, &previous_load_callback);
}

static void
child(void)
{
#ifdef __GLIBC__
    fork_is_multithreaded = ever_threaded();
#endif
    if (fork_is_multithreaded && !enforcement_disabled)
        multithreaded_fork_child = 1;
    if (print_initialize)
        log_all_classes();
    if (multithreaded_fork_child)
        arm_all_classes();
}

/* objc-env.h, by objc4 version: up to 866.9 only the exact "YES" (strcmp);
   from 876 these words in any case, or "1" (they parse to "not off", which
   _objc_atfork_child treats as disabled); the fault words only from 940.4,
   parsed as off before. */
static int
is_apple_yes(const char *value, double objc4)
{
    static const char *const yes[] = {"YES", "WARN", "TRUE", "ON", "Y", "FATAL", "HALT"};
    static const char *const faults[] = {"FAULT", "STOCHASTIC-FAULT", "STOCHASTICFAULT"};
    size_t i;
    if (value == NULL)
        return 0;
    if (objc4 < 876)
        return strcmp(value, "YES") == 0;
    if (strcmp(value, "1") == 0)
        return 1;
    for (i = 0; i < sizeof yes / sizeof yes[0]; i++)
        if (strcasecmp(value, yes[i]) == 0)
            return 1;
    for (i = 0; objc4 >= 940.4 && i < sizeof faults / sizeof faults[0]; i++)
        if (strcasecmp(value, faults[i]) == 0)
            return 1;
    return 0;
}

/* Read once, as objc's environ_init does during _objc_init; secure_getenv
   ignores the environment in set-id (AT_SECURE) processes, like issetugid. */
__attribute__((constructor)) static void
load(void)
{
    const char *version = secure_getenv("FORKSAFETY_OBJC4");
    double objc4 = version ? atof(version) : 951.1;
    enforcement_disabled = is_apple_yes(secure_getenv("OBJC_DISABLE_INITIALIZE_FORK_SAFETY"), objc4);
    pthread_atfork(prepare, NULL, child);
    print_initialize = is_apple_yes(secure_getenv("OBJC_PRINT_INITIALIZE_METHODS"), objc4);
}

/* objc4 refuses a new +initialize in a restricted child whatever brought the
   class (objc-initialize.mm); a class registered there is armed at once. */
void
objc_registerClassPair(Class cls)
{
    static void (*registered)(Class);
    if (!registered) {
        void *runtime = dlopen("libobjc.so.4", RTLD_LAZY | RTLD_NOLOAD);
        if (!runtime || !(*(void **)&registered = dlsym(runtime, "objc_registerClassPair")))
            abort();
    }
    registered(cls);
    if (multithreaded_fork_child)
        arm_class(cls);
}

/* For tests: whether this process is a restricted fork child. */
int
forksafety_is_restricted(void)
{
    return multithreaded_fork_child;
}
