"""`import objcprefork.auto` switches objcprefork on with the configuration of
the environment and the config file, as start-up activation reads them, but
without OBJCPREFORK=1 or the marker. It is meant as the first line of a
shipped app's entry point, so it never stops the app: a bad setting of the
app's user is one warning line on stderr and is skipped, as at start-up (use
objcprefork.install_from_config() to have it raise instead)."""

from . import _startup
from . import status as _status

_startup.activate("import objcprefork.auto", switched=True)
status = _status()
