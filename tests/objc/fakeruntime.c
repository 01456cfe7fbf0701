/* A stand-in Objective-C runtime whose class list grows between the calls of
   objc_getClassList, as Apple's can when another thread registers a class
   between "how many?" and "fill this buffer": the count the second call
   returns is then larger than the buffer. Only what objcprefork binds.
   With -DFORCING_ONLY it has only what forcing needs: the diagnostic queries
   are missing, and the runtime must still bind and force. */
#include <stddef.h>

#define MOST 64
struct fake_class { void *isa; char name[8]; };
static struct fake_class classes[MOST];
static int registered = 2;

int fake_forced; /* calls of the forcing function, for the test */

void *objc_lookUpClass(const char *name)
{
    return name[0] == 'F' && name[1] == 'K' && name[2] == '\0' ? (void *)classes : NULL;
}
void *class_getMethodImplementation(void *cls, void *sel) { (void)cls; (void)sel; fake_forced++; return NULL; }
void *sel_registerName(const char *name) { return (void *)name; }
#ifndef FORCING_ONLY
const char *class_getName(struct fake_class *cls) { return cls->name; }
void *class_getSuperclass(void *cls) { (void)cls; return NULL; }
void *class_getClassMethod(void *cls, void *sel) { (void)cls; (void)sel; return NULL; }
void *method_getImplementation(void *method) { (void)method; return NULL; }

int
objc_getClassList(struct fake_class **buffer, int count)
{
    int total = registered, i;
    for (i = 0; buffer && i < count && i < total; i++) {
        classes[i].name[0] = 'F', classes[i].name[1] = 'K';
        classes[i].name[2] = (char)('0' + i / 10), classes[i].name[3] = (char)('0' + i % 10);
        buffer[i] = &classes[i];
    }
    if (!buffer && registered < MOST) /* twenty classes arrive right after the count */
        registered = registered + 20 < MOST ? registered + 20 : MOST;
    return total;
}
#endif
