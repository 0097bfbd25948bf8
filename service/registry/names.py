"""The default model and aliases: which model a request's name (or no name) means.

A request names a model (or an alias of `aliases.json` in the models folder) and optionally a version; no
version means the highest one. The default model is explicit: SLIMTEXT_DEFAULT_MODEL, else `aliases.json`'s
"default", else the only servable model; never picked by name order. A model name wins over an alias of the
same name.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping
from pathlib import Path

import orjson

from service.domain import NoDefaultModel, UnknownModel
from service.registry.scan import Entry, Report, Slot
from slimtext.manifest import ALIASES_FILE, is_valid_name
from slimtext.runtime import ModelLoadError
from slimtext.safefs import FileLimits, FileRejected, read_capped

log = logging.getLogger("slimtext.registry")
NO_DEFAULT = "none configured (SLIMTEXT_DEFAULT_MODEL or aliases.json)"


def read_aliases(models_dir: Path, limits: FileLimits, names: Collection[str], bad: Report) -> dict[str, str]:
    """`aliases.json`: {"alias": "model name", ...}; "default" names the default model. An alias that is also
    one of the model `names` is dropped; a bad file goes to `bad` and means no aliases."""
    try:
        raw = read_capped(models_dir, ALIASES_FILE, limits.manifest_bytes,
                          "max_manifest_bytes (SLIMTEXT_MAX_MANIFEST_BYTES)")
    except FileNotFoundError:
        return {}
    except (FileRejected, OSError) as e:
        bad(ALIASES_FILE, ModelLoadError(f"{models_dir / ALIASES_FILE}: {e}"))
        return {}
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        data, err = None, str(e)
    else:
        err = "expected an object of alias -> model name"
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and is_valid_name(k)
                                             and is_valid_name(v) for k, v in data.items()):
        bad(ALIASES_FILE, ModelLoadError(f"{models_dir / ALIASES_FILE}: {err}"))
        return {}
    clash = sorted(k for k in data if k in names and k != "default")
    if clash:
        log.warning("%s: aliases %s are also model names; the models win", ALIASES_FILE, clash)
    return {k: v for k, v in data.items() if k not in clash}


def lookup(name: str, names: Collection[str], aliases: Mapping[str, str]) -> str:
    """The model `name` means: itself when a model has that name, else what the alias names (else itself)."""
    return name if name in names else aliases.get(name, name)


def configured_default(configured: str | None, aliases: Mapping[str, str]) -> str | None:
    """The default model as configured (SLIMTEXT_DEFAULT_MODEL, else aliases.json's "default"), before
    anything is loaded: what start-up loads even under a memory budget."""
    name = configured or aliases.get("default")
    return aliases.get(name, name) if name else None


def choose_default(configured: str | None, aliases: Mapping[str, str], names: Collection[str],
                   loaded: Collection[str], budgeted: bool) -> tuple[str | None, str]:
    """(the default model, why) once start-up has loaded `loaded` of the models `names`: (None, why) when none
    is configured; ModelLoadError when the configured one is not loaded. The only servable model counts as
    configured only without a memory budget (with one, not every model is loaded at start-up)."""
    if configured:
        name, why = configured, "SLIMTEXT_DEFAULT_MODEL"
    elif "default" in aliases:
        name, why = aliases["default"], f"{ALIASES_FILE} in the models folder"
    elif len(loaded) == 1 and not budgeted:
        name, why = next(iter(loaded)), "the only servable model"
    else:
        log.warning("no default model: %s; requests must name a model", NO_DEFAULT)
        return None, NO_DEFAULT
    name = lookup(name, names, aliases)
    if name not in loaded:
        raise ModelLoadError(f"default model {name!r} ({why}) is not among the loaded models {sorted(loaded)}")
    log.info("default model: %s (chosen by %s)", name, why)
    return name, why


def resolve(name: str | None, default: str | None, names: Collection[str], aliases: Mapping[str, str]) -> str:
    """The model a request names (the default when it names none); NoDefaultModel when it names none and
    there is no default."""
    if name is None:
        if default is None:
            raise NoDefaultModel("no default model is configured (SLIMTEXT_DEFAULT_MODEL or aliases.json); "
                                 "name a model")
        return default
    return lookup(name, names, aliases)


def find_slot(entries: dict[str, Entry], name: str, version: str | None) -> Slot:
    """The version folder of model `name` (a resolved name) a request names, its highest version when it names
    none; UnknownModel naming the model or version when there is none."""
    entry = entries.get(name)
    if entry is None or not entry.versions:
        raise UnknownModel(f"no model named {name!r}; see GET /models")
    if version is None:
        return entry.latest
    slot = entry.versions.get(str(int(version)) if version.isdigit() else version)
    if slot is None:
        raise UnknownModel(f"model {name!r} has no version {version!r} "
                           f"(versions: {', '.join(sorted(entry.versions, key=int))})", code="unknown_version")
    return slot
