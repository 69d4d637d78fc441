"""The ``--config NAME_OR_PATH`` option every subcommand shares, and the loader behind it.

A value that names a preset (``sim.config.PRESETS``) gives that preset; a path to a ``.json``
file in the ``Config.to_json()`` format (what ``edge-moe config --json`` prints and
``edge-moe dse --out`` writes) gives that config. A file is checked field by field before the
``Config`` is built: an unknown field, a missing field without a default, or a value of the wrong
type is named with its file; the config is then validated like a preset (``Config`` validation
and ``check_top_level``). A missing field that has a default (a hardware field added after the
file was written, say) takes the default. Every problem raises :class:`ConfigFileError`, a
``ConfigError`` (``ValueError``): the CLI prints it as one line and exits with status 2.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from sim.config import (PRESETS, Config, ConfigError, HardwareConfig, ModelConfig,
                        NumericsConfig, check_top_level, get_config)

__all__ = ["ConfigFileError", "add_config_arg", "load_config", "CONFIG_METAVAR"]

CONFIG_METAVAR = "NAME|FILE.json"

_SECTIONS = {"model": ModelConfig, "num": NumericsConfig, "hw": HardwareConfig}
_QFORMAT_KEYS = {"int_bits": int, "frac_bits": int, "signed": bool}


class ConfigFileError(ConfigError):
    """A config file that cannot be read, parsed or validated (the message names the file)."""


def add_config_arg(parser, default: str | None = None, *, required: bool = False,
                   what: str = "") -> None:
    """Add ``--config NAME|FILE.json`` to ``parser``; ``what`` says what the default is for."""
    if required:
        dflt = "required"
    elif default is None:
        dflt = "default: " + (what or "none")
    else:
        dflt = f"default {default}" + (f": {what}" if what else "")
    parser.add_argument("--config", default=default, required=required, metavar=CONFIG_METAVAR,
                        help=f"configuration: a preset ({', '.join(PRESETS)}) or a .json file "
                             f"as `edge-moe config --json` prints and `edge-moe dse --out` "
                             f"writes ({dflt})")


def load_config(value: str) -> Config:
    """The preset named ``value``, or the config in the JSON file at path ``value``."""
    if value in PRESETS:
        return get_config(value)
    path = Path(value)
    if path.suffix.lower() != ".json" and not path.is_file():
        raise ConfigFileError(f"unknown config {value!r}; known configs: {', '.join(PRESETS)}; "
                              f"or the path of a .json config file")
    if not path.is_file():
        raise ConfigFileError(f"config file {value} does not exist")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigFileError(f"config file {value}: cannot read it: {e}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ConfigFileError(f"config file {value} is not valid JSON: {e}") from None
    try:
        cfg = Config.from_dict(_checked(data))
        return check_top_level(cfg)
    except ValueError as e:             # ConfigError, or a QFormat that cannot exist
        raise ConfigFileError(f"config file {value}: {e}") from None


def _type_ok(value, type_name: str) -> bool:
    """Does a JSON value suit a dataclass field annotated ``type_name``?"""
    if value is None:
        return "None" in type_name
    base = type_name.split("|")[0].strip()
    if base == "bool":
        return isinstance(value, bool)
    if base == "int":
        return isinstance(value, int) and not isinstance(value, bool)
    if base == "float":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if base.startswith("tuple"):
        return isinstance(value, list) and all(_type_ok(v, "int") for v in value)
    if base == "QFormat":
        return isinstance(value, dict)
    return True


def _check_keys(d: dict, allowed: set, required: set, where: str) -> None:
    unknown = sorted(set(d) - allowed)
    if unknown:
        raise ConfigFileError(f"unknown field {where}{unknown[0]}"
                              + (f" (and {len(unknown) - 1} more)" if len(unknown) > 1 else ""))
    missing = sorted(required - set(d))
    if missing:
        raise ConfigFileError(f"missing field {where}{missing[0]}"
                              + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))


def _checked(data) -> dict:
    """``data`` if it has the shape of ``Config.to_dict()``; else ConfigFileError naming the
    first bad field."""
    if not isinstance(data, dict):
        raise ConfigFileError(f"the top level must be an object, got {type(data).__name__}")
    _check_keys(data, {"name", *_SECTIONS}, {"name", "model"}, "")
    if not isinstance(data["name"], str):
        raise ConfigFileError("field name must be a string")
    for section, cls in _SECTIONS.items():
        d = data.setdefault(section, {})
        if not isinstance(d, dict):
            raise ConfigFileError(f"field {section} must be an object")
        fields = {f.name: f for f in dataclasses.fields(cls)}
        required = {n for n, f in fields.items() if f.default is dataclasses.MISSING
                    and f.default_factory is dataclasses.MISSING}
        _check_keys(d, set(fields), required, f"{section}.")
        for name, v in d.items():
            where = f"{section}.{name}"
            if not _type_ok(v, str(fields[name].type)):
                raise ConfigFileError(f"field {where} must be {fields[name].type}, got "
                                      f"{json.dumps(v)}")
            if str(fields[name].type) == "QFormat":
                _check_keys(v, set(_QFORMAT_KEYS), {"int_bits", "frac_bits"}, f"{where}.")
                for k, t in _QFORMAT_KEYS.items():
                    if k in v and not _type_ok(v[k], t.__name__):
                        raise ConfigFileError(f"field {where}.{k} must be {t.__name__}, got "
                                              f"{json.dumps(v[k])}")
    return data
