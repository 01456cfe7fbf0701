/* The musl-shaped lane: LD_PRELOAD'ed, this dlsym hides glibc's
   __libc_single_threaded from whoever looks it up by name (objcprefork's
   core), as musl has no such flag; code that links the symbol directly (the
   emulation) still sees it. The real dlsym comes from dlvsym; a hidden name is
   asked for as a name that does not exist, so dlerror() says why (a bare NULL
   leaves it empty, and ctypes crashes reading it). */
#define _GNU_SOURCE 1
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

void *
dlsym(void *handle, const char *name)
{
    static void *(*real)(void *, const char *);
    if (!real && !(real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.34")) &&
        !(real = dlvsym(RTLD_NEXT, "dlsym", "GLIBC_2.2.5")))
        abort();
    if (name && strcmp(name, "__libc_single_threaded") == 0)
        name = "__libc_single_threaded (hidden: the musl-shaped lane)";
    return real(handle, name);
}
