/* A class library that tests load only after objcprefork.install(). */
#include <objc/runtime.h>

__attribute__((objc_root_class))
@interface FXLateRoot { Class isa; }
+ (void)initialize;
+ (id)touch;
- (id)self;
@end
@implementation FXLateRoot
+ (void)initialize { }
+ (id)touch { return self; }
- (id)self { return self; }
@end

@interface FXLate : FXLateRoot @end
@implementation FXLate
+ (void)initialize { }
@end

int
fx_late_touch(void)
{
    [FXLate touch];
    return 0;
}

/* FXWaits's +initialize takes a lock that another thread can hold while it
   waits for the GIL: forcing it with the GIL held would deadlock. */
#include <pthread.h>
#include <unistd.h>

static pthread_mutex_t wait_lock = PTHREAD_MUTEX_INITIALIZER;
static volatile int wait_lock_held;
static int waits_initialized;

@interface FXWaits : FXLateRoot @end
@implementation FXWaits
+ (void)initialize
{
    pthread_mutex_lock(&wait_lock);
    waits_initialized++;
    pthread_mutex_unlock(&wait_lock);
}
@end

/* Holds the lock, gives the caller time to start forcing FXWaits, then calls
   back into Python (which needs the GIL) before letting go. */
void
fx_hold_lock_calling(void (*callback)(void))
{
    pthread_mutex_lock(&wait_lock);
    wait_lock_held = 1;
    usleep(200000);
    callback();
    wait_lock_held = 0;
    pthread_mutex_unlock(&wait_lock);
}

int
fx_wait_lock_held(void)
{
    return wait_lock_held;
}

int
fx_waits_initialized(void)
{
    return waits_initialized;
}

/* A client prepare handler that starts (and joins) a thread: registered
   before the emulation loads, it runs after the emulation's own prepare
   handler (prepare handlers run in reverse order of registration), as a
   library's handler can run after objcprefork's. objc4 samples threadedness
   after every client handler, so the fork child is restricted. */
static void *
nothing(void *arg)
{
    return arg;
}

static void
thread_at_fork(void)
{
    pthread_t thread;
    if (pthread_create(&thread, NULL, nothing, NULL) == 0)
        pthread_join(thread, NULL);
}

int
fx_start_thread_at_fork(void)
{
    return pthread_atfork(thread_at_fork, NULL, NULL);
}
