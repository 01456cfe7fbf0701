/* The fork handlers and the mirror of objc's restricted process
   (docs/design.md, "Inside the fork" and "Restricted processes").

   Nothing inside the fork but flag reads: the handlers never look anything
   up, load, allocate, lock, wait or run a +initialize, and never touch
   Python. Every class is found and forced before the fork, outside it (at
   configuration time and in os.fork's before-hook, with the GIL released). */
#define _GNU_SOURCE 1 /* RTLD_DEFAULT */
#include "core.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#ifdef __APPLE__
#include <libproc.h>
#include <mach-o/dyld.h>
#include <mach-o/getsect.h>
#include <mach-o/loader.h>
#include <sys/proc_info.h>
#include <sys/sysctl.h>
#else
#include <sys/auxv.h>
#endif

atomic_int installed, restricted, no_child_cores;
const char *restricted_reason, *check_off_reason;
static pthread_mutex_t load_lock = PTHREAD_MUTEX_INITIALIZER;
static int loaded; /* load_lock */

/* ---- threadedness, the input of objc's restriction ------------------------- */

#ifdef __APPLE__
/* objc samples pthread_is_threaded_np ("has this process ever created a
   thread", libpthread pthread.c) in _objc_atfork_prepare, after every client
   prepare handler; libpthread resets it in the child, so it is sampled here,
   in ours. One gap: a client handler that runs after ours and starts a thread
   (design.md, "Known differences"). */
static atomic_int fork_threaded;

static void
prepare(void)
{
    atomic_store_explicit(&fork_threaded, pthread_is_threaded_np() != 0, memory_order_relaxed);
}

static int
parent_was_threaded(void)
{
    return atomic_load_explicit(&fork_threaded, memory_order_relaxed);
}
#else
/* glibc >= 2.32: __libc_single_threaded turns 0 at the first thread and stays
   0, in fork children too, so the child reads it after every prepare handler
   ran, as objc samples: no prepare handler is needed at all. Without the flag
   (musl) whether the parent was threaded is unknown: assume it was. */
static const char *single_threaded;
#define prepare NULL

static int
parent_was_threaded(void)
{
    return single_threaded ? *single_threaded == 0 : 1;
}
#endif

static void
after_fork_child(void)
{
    if (parent_was_threaded() && !atomic_load(&restricted)) {
#ifdef __APPLE__
        restricted_reason = "a fork child of a threaded parent";
#else
        restricted_reason = single_threaded ? "a fork child of a threaded parent"
                                            : "a fork child, and this libc does not say whether "
                                              "its parent was ever threaded";
#endif
        atomic_store(&restricted, 1);
    }
    /* Only this thread lives on: the count restarts from its own depth (a
       +initialize that forked is still reading; without the key the count
       stays, and retired tables are kept, never freed early), and a lock
       some other thread held is re-created. */
    if (table_depth_known())
        atomic_store(&readers, table_depth());
    pthread_mutex_init(&config_lock, NULL);
    pthread_mutex_init(&load_lock, NULL);
    if (atomic_load(&no_child_cores)) { /* two syscalls; the parent keeps its limit */
        struct rlimit limit;
        if (getrlimit(RLIMIT_CORE, &limit) == 0) {
            limit.rlim_cur = 0;
            setrlimit(RLIMIT_CORE, &limit);
        }
    }
}

static pthread_once_t register_once = PTHREAD_ONCE_INIT;
static int register_error;

static void
register_handlers(void)
{
    register_error = pthread_atfork(prepare, NULL, after_fork_child);
}

int
register_handlers_once(void)
{
    pthread_once(&register_once, register_handlers);
    return register_error;
}

/* ---- is Apple's check off in this process? -------------------------------- */

/* OBJC_DISABLE_INITIALIZE_FORK_SAFETY as the process started with it (objc
   reads it once, in _objc_init: objc-env.h), never as changed since; the
   last occurrence wins, as with getenv; only "YES", the one value every
   objc4 accepts, counts as off here (later objc4 take more words: the doctor
   dates them); ignored when set-id, as objc ignores its environment under
   issetugid. */
static const char env_name[] = "OBJC_DISABLE_INITIALIZE_FORK_SAFETY=";

static void
consider(const char *entry, int *off)
{
    if (strncmp(entry, env_name, sizeof env_name - 1) == 0)
        *off = strcmp(entry + sizeof env_name - 1, "YES") == 0;
}

static int
started_with_env_off(void)
{
    int off = 0;
#ifdef __APPLE__
    /* KERN_PROCARGS2: int argc, the exec path, NUL padding, then argc
       strings (argv, any of them may be empty), then the environment up to
       an empty string (kern_sysctl.c, sysctl_procargsx). */
    int mib[3] = {CTL_KERN, KERN_PROCARGS2, getpid()}, argc;
    size_t size = 0;
    char *args, *p, *end;
    if (issetugid() || sysctl(mib, 3, NULL, &size, NULL, 0) != 0 || !(args = malloc(size)))
        return 0;
    if (sysctl(mib, 3, args, &size, NULL, 0) == 0 && size > sizeof argc) {
        memcpy(&argc, args, sizeof argc);
        end = args + size;
        p = args + sizeof argc;
        p += strnlen(p, (size_t)(end - p));
        while (p < end && *p == '\0')
            p++;
        for (; p < end && argc > 0; argc--)
            p += strnlen(p, (size_t)(end - p)) + 1;
        for (; p < end && *p; p += strnlen(p, (size_t)(end - p)) + 1)
            if (memchr(p, '\0', (size_t)(end - p)))
                consider(p, &off);
    }
    free(args);
#else
    /* /proc/self/environ: the environment the process was exec'd with. */
    char buffer[4096];
    size_t kept = 0;
    ssize_t n;
    int fd, skipping = 0; /* inside an entry longer than the buffer */
    if (getauxval(AT_SECURE) || (fd = open("/proc/self/environ", O_RDONLY | O_CLOEXEC)) < 0)
        return 0;
    while ((n = read(fd, buffer + kept, sizeof buffer - kept)) > 0) {
        char *p = buffer, *end = buffer + kept + n, *nul;
        while ((nul = memchr(p, '\0', (size_t)(end - p))) != NULL) {
            if (!skipping)
                consider(p, &off);
            skipping = 0;
            p = nul + 1;
        }
        kept = (size_t)(end - p); /* an unfinished entry's head, kept for the next read */
        if (kept == sizeof buffer) { /* longer than any entry we look for */
            kept = 0;
            skipping = 1;
        }
        memmove(buffer, p, kept);
    }
    close(fd);
#endif
    return off;
}

#ifdef __APPLE__
/* A section in any __DATA segment (__DATA, __DATA_CONST, __DATA_DIRTY), as
   dyld's parseSectionLocations finds objc's sections from objc4-906 on. */
static int
data_section(const struct mach_header_64 *header, const char *name)
{
    static const char *const segments[] = {"__DATA", "__DATA_CONST", "__DATA_DIRTY"};
    unsigned long size;
    size_t i;
    for (i = 0; i < sizeof segments / sizeof segments[0]; i++)
        if (getsectiondata(header, segments[i], name, &size))
            return 1;
    return 0;
}

/* The main executable's own switches (objc-runtime-new.mm, map_images_nolock):
   linked against an SDK before 10.13, or an __objc_fork_ok section in an
   executable that has ObjC image info. */
static const char *
executable_turns_check_off(void)
{
    const struct mach_header_64 *header = (const void *)_dyld_get_image_header(0);
    const struct load_command *command;
    uint32_t i, sdk = 0;
    int versioned = 0;
    if (!header || header->magic != MH_MAGIC_64)
        return NULL;
    if (data_section(header, "__objc_fork_ok") && data_section(header, "__objc_imageinfo"))
        return "the main executable has an __objc_fork_ok section";
    command = (const void *)(header + 1);
    for (i = 0; i < header->ncmds; i++) {
        if (command->cmd == LC_BUILD_VERSION) {
            sdk = ((const struct build_version_command *)command)->sdk;
            versioned = 1;
        } else if (command->cmd == LC_VERSION_MIN_MACOSX) {
            const struct version_min_command *min = (const void *)command;
            sdk = min->sdk ? min->sdk : min->version; /* dyld uses minos when sdk is 0 */
            versioned = 1;
        }
        command = (const void *)((const char *)command + command->cmdsize);
    }
    /* An SDK of 0 in LC_BUILD_VERSION is older than any: dyld's
       dyld_program_sdk_at_least answers no, and objc4 switches the check off. */
    if (versioned && sdk < 0x000A0D00) /* xxxx.yy.zz nibbles: 10.13 */
        return "the main executable was linked against an SDK before macOS 10.13";
    return NULL;
}
#endif

/* ---- first load ------------------------------------------------------------ */

/* Evidence, for a core first loaded in a process that may be a fork child,
   that objc may already have restricted it; NULL when there is none.
   start_pid: the pid the start-up line recorded in this interpreter, or 0.
   In doubt, restricted: it then forces nothing new, which is always safe. */
static const char *
restricted_at_load(long start_pid)
{
#ifdef __APPLE__
    /* XNU's fork never copies P_EXEC (kern_fork.c), which proc_info.c reports
       as PROC_FLAG_EXEC: without it, this process forked and has not exec'd
       since, and whether its parent was threaded is unknown. So even the fork
       child of a single-threaded parent (a daemon that double-forks, then
       installs) counts as restricted here. */
    struct proc_bsdinfo info;
    (void)start_pid;
    if (proc_pidinfo(getpid(), PROC_PIDTBSDINFO, 0, &info, sizeof info) != (int)sizeof info)
        return "it cannot tell whether this process is a fork child (proc_pidinfo failed)";
    if (!(info.pbi_flags & PROC_FLAG_EXEC))
        return "loaded in a fork child that has not exec'd, whose parent may have been threaded";
    return NULL;
#else
    /* glibc's flag is 0 both in a fork child of a threaded parent and in a
       process that ran threads itself; the start-up record tells the two
       apart. Without the flag (musl) only the record speaks. */
    if (single_threaded && *single_threaded)
        return NULL; /* never threaded, nor its parent */
    if (start_pid > 0)
        return start_pid == (long)getpid() ? NULL : "loaded in a fork child of the process "
                                                    "that started this interpreter";
    return single_threaded ? "loaded in a once-threaded process without a start-up record, "
                             "which may be the fork child of a threaded parent"
                           : "loaded without a start-up record, and this libc does not say "
                             "whether the process was ever threaded";
#endif
}

/* Once per process; every interpreter's first import waits for it, so no
   configuration can come before. Plain C: no Python, no GIL needed. */
void
first_load(long start_pid)
{
    const char *reason;
    pthread_mutex_lock(&load_lock);
    if (!loaded) {
#ifdef __APPLE__
        check_off_reason = executable_turns_check_off();
#else
        single_threaded = dlsym(RTLD_DEFAULT, "__libc_single_threaded");
#endif
        table_init();
        if (!check_off_reason && started_with_env_off())
            check_off_reason = "OBJC_DISABLE_INITIALIZE_FORK_SAFETY=YES at start";
        if ((reason = restricted_at_load(start_pid)) != NULL) {
            restricted_reason = reason;
            atomic_store(&restricted, 1);
        }
        /* From the first load, not the first install(): a process that only
           imported objcprefork and then forked must still mark its child
           restricted. A failure is reported by the first set_installed(). */
        register_handlers_once();
        loaded = 1;
    }
    pthread_mutex_unlock(&load_lock);
}
