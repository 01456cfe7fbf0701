"""`import objcprefork.auto` installs objcprefork with the configuration of the
environment and the config file (see the README). Unlike start-up activation,
it does not need OBJCPREFORK=1, and a bad configuration raises ValueError."""

from . import _startup, install_from_config

status = install_from_config()
_startup.note("import objcprefork.auto")
