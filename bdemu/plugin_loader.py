"""Find plugins by built-in name, `file.py[:Class]`, `module:Class` or the `bdemu.plugins` entry points."""
from __future__ import annotations

import importlib
import importlib.util
import inspect
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


def _constructor_parameters(plugin: type[Plugin]) -> dict[str, inspect.Parameter]:
    """Keyword parameters the plugin's own `__init__` takes (none when it keeps Plugin's)."""
    if plugin.__init__ is Plugin.__init__:
        return {}
    try:
        parameters = inspect.signature(plugin).parameters
    except (TypeError, ValueError):
        return {}
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    return {name: p for name, p in parameters.items() if p.kind in kinds}


def _parameter_type(parameter: inspect.Parameter) -> type:
    """bool, int or float when the parameter's annotation or default says so, else str."""
    hint = parameter.annotation
    if isinstance(hint, str):
        hint = {"bool": bool, "int": int, "float": float}.get(hint, str)
    if hint in (bool, int, float):
        return hint
    default = parameter.default
    return type(default) if isinstance(default, (bool, int, float)) else str


def _to_type(plugin: type[Plugin], key: str, value: Any, kind: type) -> Any:
    if not isinstance(value, str) or kind is str:
        return value
    try:
        if kind is bool:
            if value.lower() not in ("on", "off", "true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("on", "true", "yes", "1")
        if kind is int:
            return int(value, 0)
        return kind(value)
    except ValueError:
        raise UsageError(f"plugin {plugin.plugin_name()}: option {key}={value!r} "
                         f"is not a valid {kind.__name__}") from None


def convert(plugin: type[Plugin], options: dict[str, Any]) -> dict[str, Any]:
    """Convert option strings to the plugin's declared types; unknown keys are usage errors.

    Options reach the constructor as keyword arguments (SPEC 3): besides the declared
    `options`, any keyword parameter of the plugin's own `__init__` takes one, converted
    by its annotation or default (bool, int, float), else passed as the string.
    """
    declared = plugin.options
    parameters = _constructor_parameters(plugin)
    converted = {}
    for key, value in options.items():
        if key in declared:
            kind = declared[key][0]
        elif key in parameters:
            kind = _parameter_type(parameters[key])
        else:
            known = ", ".join(sorted(set(declared) | set(parameters))) or "none"
            raise UsageError(f"plugin {plugin.plugin_name()}: unknown option {key!r} (options: {known})")
        converted[key] = _to_type(plugin, key, value, kind)
    missing = [name for name, p in parameters.items()
               if p.default is inspect.Parameter.empty and name not in converted]
    if missing:
        raise UsageError(f"plugin {plugin.plugin_name()}: missing option {missing[0]!r}")
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
