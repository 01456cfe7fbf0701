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
