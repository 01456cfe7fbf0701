/* Test classes for objcprefork, with a C API that Python reaches through ctypes.

   FXRoot is a root class (trivial +initialize, like NSObject). FXTrivial has no
   +initialize of its own. FXBase, FXAlpha, FXBeta and FXGamma have their own;
   FXSub inherits FXBase's, which makes it non-trivial. Every +initialize counts
   its runs, so tests can prove that objcprefork never runs one twice. */
#include <objc/runtime.h>
#include <pthread.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define FX_MAX_RECORDS 64

static struct { const char *name; int count; } records[FX_MAX_RECORDS];
static pthread_mutex_t records_lock = PTHREAD_MUTEX_INITIALIZER;

static void
fx_record(Class cls)
{
    const char *name = class_getName(cls);
    int i;
    pthread_mutex_lock(&records_lock);
    for (i = 0; i < FX_MAX_RECORDS; i++) {
        if (records[i].name == NULL)
            records[i].name = name;
        if (strcmp(records[i].name, name) == 0) {
            records[i].count++;
            break;
        }
    }
    pthread_mutex_unlock(&records_lock);
}

__attribute__((objc_root_class))
@interface FXRoot { Class isa; }
+ (void)initialize;
+ (id)touch;
- (id)self;
@end
@implementation FXRoot
+ (void)initialize { }
+ (id)touch { return self; }
- (id)self { return self; }
@end

@interface FXTrivial : FXRoot @end
@implementation FXTrivial @end

#define FX_CLASS(NAME, SUPER) \
    @interface NAME : SUPER @end \
    @implementation NAME + (void)initialize { fx_record(self); } @end

FX_CLASS(FXBase, FXRoot)
FX_CLASS(FXAlpha, FXRoot)
FX_CLASS(FXBeta, FXRoot)
FX_CLASS(FXGamma, FXRoot)

@interface FXSub : FXBase @end
@implementation FXSub @end

/* Sends a message to the named class, as any use of it would: runs its
   +initialize if it has not run. Returns 0, or -1 for an unknown class. */
int
fx_touch(const char *name)
{
    Class cls = objc_lookUpClass(name);
    if (cls == Nil)
        return -1;
    [(id)cls touch];
    return 0;
}

/* How many times +initialize ran for the named class in this process. */
int
fx_initialize_count(const char *name)
{
    int i, count = 0;
    pthread_mutex_lock(&records_lock);
    for (i = 0; i < FX_MAX_RECORDS && records[i].name != NULL; i++)
        if (strcmp(records[i].name, name) == 0)
            count = records[i].count;
    pthread_mutex_unlock(&records_lock);
    return count;
}

static void *
fork_and_touch(void *name)
{
    int status = -1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(fx_touch(name) == 0 ? 0 : 3);
    if (pid > 0)
        waitpid(pid, &status, 0);
    return (void *)(long)status;
}

/* Forks from a new C thread, which has never held the GIL; the child touches
   the named class. Returns the child's raw wait status. */
int
fx_fork_from_c_thread(const char *name)
{
    pthread_t thread;
    void *status = (void *)-1L;
    if (pthread_create(&thread, NULL, fork_and_touch, (void *)name) != 0)
        return -1;
    pthread_join(thread, &status);
    return (int)(long)status;
}

/* +initialize methods that do what docs/design.md warns about ("Inside the fork"): load a
   library, fork. objcprefork forces them outside any fork lock. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

@interface FXDlopen : FXRoot @end
@implementation FXDlopen
+ (void)initialize
{
    char path[4096];
    snprintf(path, sizeof path, "%s/liblate.so", getenv("OBJCPREFORK_FIXTURES"));
    if (dlopen(path, RTLD_NOW | RTLD_LOCAL) == NULL)
        abort();
    fx_record(self);
}
@end

@interface FXForks : FXRoot @end
@implementation FXForks
+ (void)initialize
{
    int status = -1;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
        abort();
    fx_record(self);
}
@end

static void
created_initialize(id self, SEL _cmd)
{
    (void)_cmd;
    fx_record((Class)self);
}

/* A +initialize that forks and whose child carries on, back through the
   forcing pass that ran it (the child returns into Python); the parent waits
   for the child and keeps its exit status. */
static int forks_back_status = -1;

@interface FXForksBack : FXRoot @end
@implementation FXForksBack
+ (void)initialize
{
    int status = -1;
    pid_t pid = fork();
    if (pid == 0)
        return;
    if (pid > 0 && waitpid(pid, &status, 0) == pid)
        forks_back_status = status;
    fx_record(self);
}
@end

int
fx_forks_back_status(void)
{
    return forks_back_status;
}

/* Creates and registers, at run time, a subclass of FXRoot with its own
   +initialize (objc_allocateClassPair: a class no image brings). 0 or -1. */
int
fx_create_class(const char *name)
{
    Class cls = objc_allocateClassPair(objc_lookUpClass("FXRoot"), name, 0);
    if (cls == Nil)
        return -1;
    class_addMethod(object_getClass((id)cls), sel_registerName("initialize"),
                    (IMP)created_initialize, "v@:");
    objc_registerClassPair(cls);
    return 0;
}
