"""The TensorRT-LLM command-line spec, by CLI version: which flags exist, what values they take.

The facts live in orchestrator/data/trtllm_cli.json (made from the shared reference by
scripts/import_trtllm_spec.py, each part with the upstream file and commit it was read
from), keyed by CLI version: "1.2" (the 1.2.x line: trtllm-build, TensorRT backend) and
"main" (1.3+: pytorch backend only). An image's `cli_spec` in docker/images.lock.yaml
names the version its tools are checked against.

This module answers three questions, all without importing anything heavy:
  - does this argv fit the version's CLI (`check_argv`)?
  - do these {flag: value} settings fit it (`check_flags`), and how is each rendered
    (`render_flag`: plugin switches take enable/disable, store_true flags no value)?
  - do these llm-api YAML options fit the keys we know (`check_llm_api_options`)?
Problems are returned, not raised, and name the flag and the TRT-LLM version.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from orchestrator.errors import UserError

SPEC_PATH = Path(__file__).resolve().parent / "data" / "trtllm_cli.json"
ENABLE_DISABLE = frozenset({"enable", "disable"})


@dataclass(frozen=True)
class OptionSpec:
    """One option of a TRT-LLM command as its parser declares it."""

    flags: tuple[str, ...]
    type: str  # str | int | float | path | flag (switch, no value) | bool (--on/--off pair)
    choices: tuple[str, ...] | None = None
    value_aliases: dict[str, str] = field(default_factory=dict)
    off_flags: tuple[str, ...] = ()
    multiple: bool = False
    nargs: str | None = None
    status: str | None = None  # click stability status on main: beta | prototype | deprecated
    default: object = None
    help: str = ""

    @property
    def name(self) -> str:
        return self.flags[0]

    @property
    def takes_value(self) -> bool:
        return self.type not in ("flag", "bool")

    @property
    def is_switch_pair(self) -> bool:
        """A plugin-style option whose value is enable/disable (a bool in a recipe)."""
        return self.choices is not None and set(self.choices) == ENABLE_DISABLE


@dataclass
class ToolSpec:
    """One command (trtllm-build, trtllm-serve, ...) of one CLI version."""

    tool: str
    version: str
    options: tuple[OptionSpec, ...]
    positional: tuple[str, ...]
    provenance: tuple[dict[str, str], ...]
    by_flag: dict[str, OptionSpec] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_flag = {flag: opt for opt in self.options for flag in (*opt.flags, *opt.off_flags)}

    def option(self, flag: str) -> OptionSpec | None:
        """The option spelled `flag` (any alias, `--x=v` allowed), or None."""
        return self.by_flag.get(flag.split("=", 1)[0])

    def all_flags(self) -> list[str]:
        return sorted(self.by_flag)


@dataclass(frozen=True)
class SpecProblem:
    """A flag, value or key the pinned TRT-LLM version does not accept."""

    flag: str  # as the orchestrator or the recipe wrote it: "--gemm_plugin", "moe_config.backend"
    value: object
    message: str

    def __str__(self) -> str:
        shown = "" if self.value is None else f"={self.value!r}"
        return f"{self.flag}{shown}: {self.message}"


@lru_cache(maxsize=1)
def load_spec(path: str | None = None) -> dict[str, Any]:
    """The whole spec file, parsed once per process."""
    spec_path = Path(path) if path else SPEC_PATH
    return json.loads(spec_path.read_text())


def versions() -> list[str]:
    return list(load_spec()["versions"])


def _version_data(version: str) -> dict[str, Any]:
    data = load_spec()["versions"].get(version)
    if data is None:
        raise UserError(f"no TensorRT-LLM CLI spec {version!r}; known: {', '.join(versions())}",
                        hint="fix cli_spec in docker/images.lock.yaml or run scripts/import_trtllm_spec.py")
    return data


def label(version: str, trtllm: str | None = None) -> str:
    """How messages name a version: 'TRT-LLM 1.2.0rc6 (CLI spec 1.2)' or 'TRT-LLM 1.2'."""
    if trtllm and trtllm != version:
        return f"TRT-LLM {trtllm} (CLI spec {version})"
    return f"TRT-LLM {version}"


@lru_cache(maxsize=16)
def tool_spec(version: str, tool: str) -> ToolSpec | None:
    """The spec of `tool` in `version`, or None when that version has no such command."""
    raw = _version_data(version)["tools"].get(tool)
    if raw is None:
        return None
    options = tuple(
        OptionSpec(
            flags=tuple(opt["flags"]),
            type=opt["type"],
            choices=tuple(opt["choices"]) if opt.get("choices") else None,
            value_aliases=dict(opt.get("value_aliases") or {}),
            off_flags=tuple(opt.get("off_flags") or ()),
            multiple=bool(opt.get("multiple")),
            nargs=opt.get("nargs"),
            status=opt.get("status"),
            default=opt.get("default"),
            help=opt.get("help", ""),
        )
        for opt in raw["options"]
    )
    positional = tuple(p["name"] for p in raw.get("positional") or ())
    return ToolSpec(tool, version, options, positional, tuple(raw.get("provenance") or ()))


def has_flag(version: str, tool: str, flag: str) -> bool:
    spec = tool_spec(version, tool)
    return spec is not None and spec.option(flag) is not None


def first_flag(version: str, tool: str, candidates: tuple[str, ...]) -> str | None:
    """The first of `candidates` that `tool` of `version` accepts (for renamed flags)."""
    return next((flag for flag in candidates if has_flag(version, tool, flag)), None)


def as_flag(name: str) -> str:
    """A recipe's extra-flag key ('gemm_plugin' or '--gemm_plugin') as a command-line flag."""
    return name if name.startswith("-") else f"--{name}"


def render_flag(version: str, tool: str, name: str, value: object) -> list[str]:
    """argv tokens for setting `name` to `value`, following the option's type in the spec.

    Store-true switches take no value (true -> the bare flag, false -> nothing); click's
    --on/--off pairs pick a spelling; plugin options take enable/disable for a bool.
    Unknown flags are rendered plainly; `check_flags` reports them.
    """
    flag = as_flag(name)
    spec = tool_spec(version, tool)
    opt = spec.option(flag) if spec else None
    if not isinstance(value, bool):
        return [flag, str(value)]
    if opt is None or opt.type == "flag":
        return [flag] if value else []
    if opt.type == "bool":
        return [opt.flags[0] if value else (opt.off_flags or opt.flags)[0]]
    if opt.is_switch_pair:
        return [flag, "enable" if value else "disable"]
    return [flag, "true" if value else "false"]  # a bool for a valued option: check_flags reports it


def _value_problem(opt: OptionSpec, value: object, who: str) -> str | None:
    """Why `value` (recipe value or argv string) does not fit `opt`, or None."""
    if opt.type == "flag":
        if isinstance(value, bool):
            return None
        return f"{who} {opt.name} is a switch that takes no value; set it to true (or false to leave it out)"
    if opt.type == "bool":
        return None if isinstance(value, bool) else f"{who} {opt.name} takes true or false"
    if isinstance(value, bool):
        if opt.is_switch_pair:
            return None
        return f"{who} {opt.name} takes a value of type {opt.type}, not {str(value).lower()}"
    text = str(value)
    if opt.choices is not None:
        if text in opt.choices or text in opt.value_aliases:
            return None
        close = difflib.get_close_matches(text, opt.choices, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"{who} {opt.name} takes one of {', '.join(dict.fromkeys(opt.choices))}{hint}"
    if opt.type == "int":
        try:
            int(text)
        except ValueError:
            return f"{who} {opt.name} takes an integer"
    if opt.type == "float":
        try:
            float(text)
        except ValueError:
            return f"{who} {opt.name} takes a number"
    return None


def _unknown_flag(spec: ToolSpec, flag: str, who: str) -> str:
    close = difflib.get_close_matches(flag, spec.all_flags(), n=1, cutoff=0.7)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"{who} has no flag {flag}{hint}"


def _missing_tool(version: str, tool: str, trtllm: str | None) -> SpecProblem:
    tools = ", ".join(_version_data(version)["tools"])
    return SpecProblem(tool, None, f"{label(version, trtllm)} has no {tool} (it has {tools})")


def check_flags(version: str, tool: str, flags: dict[str, object], trtllm: str | None = None) -> list[SpecProblem]:
    """Problems with recipe-style {flag: value} settings for `tool` of `version`."""
    spec = tool_spec(version, tool)
    if spec is None:
        return [_missing_tool(version, tool, trtllm)] if flags else []
    who = f"{tool} of {label(version, trtllm)}"
    problems = []
    for name, value in flags.items():
        flag = as_flag(name)
        opt = spec.option(flag)
        if opt is None:
            problems.append(SpecProblem(flag, value, _unknown_flag(spec, flag, who)))
            continue
        why = _value_problem(opt, value, who)
        if why:
            problems.append(SpecProblem(flag, value, why))
    return problems


def check_argv(argv: list[str], version: str, trtllm: str | None = None) -> list[SpecProblem]:
    """Problems with a whole argv (argv[0] names the tool) against `version`'s parser."""
    tool = Path(argv[0]).name
    spec = tool_spec(version, tool)
    if spec is None:
        return [_missing_tool(version, tool, trtllm)]
    who = f"{tool} of {label(version, trtllm)}"
    problems: list[SpecProblem] = []
    positional: list[str] = []
    seen: dict[int, str] = {}
    i = 1
    while i < len(argv):
        token = argv[i]
        i += 1
        if not token.startswith("-") or token == "-":
            positional.append(token)
            continue
        flag, has_inline, inline = token.partition("=")
        opt = spec.option(flag)
        if opt is None:
            problems.append(SpecProblem(flag, None, _unknown_flag(spec, flag, who)))
            if not has_inline and i < len(argv) and not argv[i].startswith("-"):
                i += 1  # most likely its value, not a positional argument
            continue
        if id(opt) in seen and not opt.multiple and opt.nargs is None:
            problems.append(SpecProblem(flag, None, f"{who}: {flag} given twice (also as {seen[id(opt)]})"))
        seen[id(opt)] = flag
        if not opt.takes_value:
            if has_inline:
                problems.append(SpecProblem(flag, inline, f"{who} {opt.name} is a switch that takes no value"))
            continue
        if has_inline:
            value = inline
        elif i < len(argv):
            value = argv[i]
            i += 1
        else:
            problems.append(SpecProblem(flag, None, f"{who} {opt.name} needs a value"))
            continue
        why = _value_problem(opt, value, who)
        if why:
            problems.append(SpecProblem(flag, value, why))
    if len(positional) > len(spec.positional):
        extra = positional[len(spec.positional):]
        problems.append(SpecProblem(extra[0], None, f"{who} takes {len(spec.positional)} positional argument(s) "
                                    f"({', '.join(spec.positional) or 'none'}); unexpected {' '.join(extra)}"))
    elif len(positional) < len(spec.positional):
        missing = spec.positional[len(positional):]
        problems.append(SpecProblem(missing[0], None, f"{who} needs {', '.join(missing)}"))
    return problems


# ---- llm-api YAML (--extra_llm_api_options / --config) ----

def llm_api_keys(version: str) -> dict[str, dict[str, Any]]:
    """Known llm-api YAML keys of `version`, dotted ('kv_cache_config.dtype') -> spec entry."""
    section = _version_data(version).get("llm_api_yaml") or {}
    return {entry["key"]: entry for entry in section.get("keys", [])}


def llm_api_keys_complete(version: str) -> bool:
    """Whether the spec lists every key (then unknown keys are errors) or only some."""
    return bool((_version_data(version).get("llm_api_yaml") or {}).get("complete"))


def _leaves(options: dict[str, Any], known: dict[str, dict[str, Any]], prefix: str = ""):
    """(dotted key, value) pairs: known keys whose value is not itself a section, and unknown leaves."""
    for key, value in options.items():
        path = f"{prefix}{key}"
        has_children = any(k.startswith(path + ".") for k in known)
        if isinstance(value, dict) and (has_children or path not in known):
            yield from _leaves(value, known, path + ".")
        else:
            yield path, value


def _type_problem(type_name: str, value: object) -> str | None:
    """Why `value` does not fit the llm_args type text ('Optional[int]', 'List[str]', ...)."""
    text = type_name.replace(" ", "")
    if text.startswith("Optional[") and text.endswith("]"):
        if value is None:
            return None
        text = text[len("Optional["):-1]
    checks = {
        "bool": lambda v: isinstance(v, bool),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "str": lambda v: isinstance(v, str),
    }
    if text in checks:
        return None if checks[text](value) else f"takes a {text}"
    if text.startswith("List[") and text.endswith("]"):
        inner = text[len("List["):-1]
        if not isinstance(value, list):
            return f"takes a list of {inner}"
        if inner in checks and not all(checks[inner](v) for v in value):
            return f"takes a list of {inner}"
    return None  # config objects and unions: TRT-LLM validates them itself


def check_llm_api_options(options: dict[str, Any], version: str, trtllm: str | None = None) -> list[SpecProblem]:
    """Problems with llm-api YAML options, for the keys the spec lists (values, choices, types).

    Keys the spec does not list are only errors when the spec is complete; the reference
    lists the keys that matter to our recipes, not every LlmArgs field.
    """
    known = llm_api_keys(version)
    who = f"llm-api option of {label(version, trtllm)}"
    complete = llm_api_keys_complete(version)
    problems = []
    for key, value in _leaves(options, known):
        entry = known.get(key)
        if entry is None:
            if complete:
                close = difflib.get_close_matches(key, list(known), n=1)
                hint = f"; did you mean {close[0]}?" if close else ""
                problems.append(SpecProblem(key, value, f"no such {who}{hint}"))
            continue
        choices = entry.get("choices")
        items = value if isinstance(value, list) else [value]
        if choices and value is not None and any(item not in choices for item in items):
            problems.append(SpecProblem(key, value, f"{who} {key} takes {', '.join(map(str, choices))}"))
            continue
        why = _type_problem(entry.get("type", ""), value)
        if why:
            problems.append(SpecProblem(key, value, f"{who} {key} {why}"))
    return problems


def unknown_llm_api_keys(options: dict[str, Any], version: str) -> list[str]:
    """Dotted keys of `options` that the spec does not list (the contract test wants none of ours)."""
    known = llm_api_keys(version)
    return [key for key, _ in _leaves(options, known) if key not in known]
