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
