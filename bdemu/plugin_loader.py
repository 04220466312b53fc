"""Find plugins by built-in name, `file.py[:Class]`, `module:Class` or the `bdemu.plugins` entry points."""
from __future__ import annotations

import importlib
import importlib.util
import os
import pkgutil
from typing import Any

from .errors import UsageError
from .hooks import Plugin

ENTRY_POINT_GROUP = "bdemu.plugins"


def builtin_names() -> list[str]:
    from . import plugins
    return sorted(m.name for m in pkgutil.iter_modules(plugins.__path__) if not m.name.startswith("_"))


def _plugin_class_in(module, wanted: str | None, origin: str) -> type[Plugin]:
    if wanted:
        found = getattr(module, wanted, None)
        if not (isinstance(found, type) and issubclass(found, Plugin)):
            raise UsageError(f"{origin}: no Plugin subclass named {wanted!r}")
        return found
    classes = [v for v in vars(module).values() if isinstance(v, type) and issubclass(v, Plugin)
               and v is not Plugin and v.__module__ == module.__name__]
    if len(classes) != 1:
        raise UsageError(f"{origin}: expected exactly one Plugin subclass, found {len(classes)}")
    return classes[0]


def _entry_point(name: str):
    from importlib.metadata import entry_points
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        if entry.name == name:
            return entry
    return None


def resolve(spec: str) -> type[Plugin]:
    """The Plugin class named by `spec`."""
    path, wanted = spec, ""
    if ".py:" in spec:
        path, wanted = spec.rsplit(":", 1)
    if path.endswith(".py"):
        if not os.path.isfile(path):
            raise UsageError(f"plugin file {path!r} not found")
        module_spec = importlib.util.spec_from_file_location(f"bdemu_user_plugin_{abs(hash(path))}", path)
        module = importlib.util.module_from_spec(module_spec)
        try:
            module_spec.loader.exec_module(module)
        except Exception as error:
            raise UsageError(f"plugin file {path!r} failed to load: {error}") from None
        return _plugin_class_in(module, wanted or None, path)
    if spec in builtin_names():
        module = importlib.import_module(f"bdemu.plugins.{spec}")
        return _plugin_class_in(module, None, spec)
    entry = _entry_point(spec)
    if entry is not None:
        loaded = entry.load()
        if isinstance(loaded, type) and issubclass(loaded, Plugin):
            return loaded
        return _plugin_class_in(loaded, None, spec)
    if ":" in spec:
        module_name, _, class_name = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as error:
            raise UsageError(f"plugin module {module_name!r} not found: {error}") from None
        return _plugin_class_in(module, class_name, spec)
    raise UsageError(f"unknown plugin {spec!r} (see `bdemu plugins`)")


def convert(plugin: type[Plugin], options: dict[str, Any]) -> dict[str, Any]:
    """Convert option strings to the plugin's declared types; unknown keys are usage errors."""
    declared = plugin.options
    converted = {}
    for key, value in options.items():
        if key not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise UsageError(f"plugin {plugin.plugin_name()}: unknown option {key!r} (options: {known})")
        kind = declared[key][0]
        if isinstance(value, str) and kind is not str:
            try:
                if kind is bool:
                    if value.lower() not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
                        raise ValueError(value)
                    value = value.lower() in ("on", "true", "yes", "1")
                elif kind is int:
                    value = int(value, 0)
                else:
                    value = kind(value)
            except ValueError:
                raise UsageError(f"plugin {plugin.plugin_name()}: option {key}={value!r} "
                                 f"is not a valid {kind.__name__}") from None
        converted[key] = value
    return converted


def instantiate(plugin: Plugin | str | type, options: dict[str, Any]) -> Plugin:
    if isinstance(plugin, Plugin):
        if options:
            raise UsageError("options can only be given with a plugin name or class")
        return plugin
    cls = resolve(plugin) if isinstance(plugin, str) else plugin
    if not (isinstance(cls, type) and issubclass(cls, Plugin)):
        raise UsageError(f"{plugin!r} is not a Plugin")
    return cls(**convert(cls, options))


def parse_spec(text: str) -> tuple[str, dict[str, str]]:
    """`name,key=value,...` -> (name, {key: value})."""
    name, *pairs = text.split(",")
    options = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"plugin option {pair!r} is not key=value")
        options[key.strip()] = value
    if not name:
        raise UsageError("empty plugin name")
    return name, options


def available() -> list[tuple[str, type[Plugin]]]:
    """Built-in plugins and those registered by installed packages, for `bdemu plugins`."""
    from importlib.metadata import entry_points
    found = [(name, resolve(name)) for name in builtin_names()]
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            found.append((entry.name, resolve(entry.name)))
        except UsageError:
            continue
    return found
