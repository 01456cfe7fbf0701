"""Generated from data/classes.csv by `make docs` (docs/generate.py); a test
checks that the two agree. Do not edit."""

DEFAULT_CLASSES: tuple[str, ...] = (
    "__NSCFConstantString",
    "__NSPlaceholderDate",
    "NSNumber",
    "__NSPlaceholderDictionary",
    "NSCharacterSet",
    "NSString",
    "NSMutableString",
    "NSPlaceholderMutableString",
    "NSCheapMutableString",
    "NSPlaceholderString",
    "NSValue",
    "NSResponder",
    "__NSPlaceholderArray",
    "__NSPlaceholderSet",
    "__NSTimeZone",
    "ODNode",
    "NSTaggedPointerString",
)
