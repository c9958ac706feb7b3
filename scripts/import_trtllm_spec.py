"""Bring the TensorRT-LLM CLI reference into the repository as versioned test data.

    python scripts/import_trtllm_spec.py [REFERENCE_JSON] [--out orchestrator/data/trtllm_cli.json]

REFERENCE_JSON (default ../shared/reference/trtllm-cli.json next to the checkout) holds
trtllm-build / trtllm-serve / trtllm-bench options and the llm-api YAML keys as read from
NVIDIA/TensorRT-LLM source files, each with the file and commit it came from. This script
regroups those facts by TRT-LLM CLI version ("1.2" = the 1.2.x line that still ships
trtllm-build and the TensorRT backend; "main" = 1.3 and later), keeps the provenance of
every part, and writes orchestrator/data/trtllm_cli.json deterministically, so the
committed file can always be regenerated and diffed. It changes no fact; it only
normalises shapes (`--telemetry/--no-telemetry` becomes one option with `off_flags`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = REPO.parent / "shared" / "reference" / "trtllm-cli.json"
DEFAULT_OUT = REPO / "orchestrator" / "data" / "trtllm_cli.json"
SCHEMA_VERSION = 1

# Fields of an option copied as they are (everything the checks and the argv rendering need,
# plus help/notes so an error can say what the flag is).
OPTION_FIELDS = ("flags", "type", "default", "default_expr", "choices", "choices_expr", "aliases", "multiple",
                 "nargs", "dest", "required", "status", "group", "help", "note")


def _option(raw: dict[str, Any]) -> dict[str, Any]:
    option = {key: raw[key] for key in OPTION_FIELDS if key in raw and raw[key] is not None}
    if "aliases" in option:
        option["value_aliases"] = option.pop("aliases")
    flags = []
    off_flags = []
    for flag in option["flags"]:
        # click's boolean switch pair "--on/--off" is one option with two spellings.
        if "/" in flag:
            on, off = flag.split("/", 1)
            flags.append(on)
            off_flags.append(off)
        else:
            flags.append(flag)
    option["flags"] = flags
    if off_flags:
        option["off_flags"] = off_flags
    return option


def _options(raw_options: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [_option(raw) for raw in raw_options]


def _provenance(repo: str, entries: list[dict[str, Any]]) -> list[dict[str, str]]:
    out = []
    for entry in entries:
        if "path" not in entry:
            continue
        record = {"repo": repo, "file": entry["path"], "commit": entry["commit"]}
        if entry.get("note"):
            record["note"] = entry["note"]
        out.append(record)
    return out


def convert(reference: dict[str, Any], reference_name: str) -> dict[str, Any]:
    """The repository's spec (versions -> tools -> options) from the reference JSON."""
    source = reference["source"]
    repo = source["repo"]
    files = source["files"]
    build = reference["trtllm-build"]
    serve = reference["trtllm-serve"]
    bench = reference["trtllm-bench"]
    yaml_keys = reference["llm_api_yaml_keys"]
    endpoints = reference["http_endpoints"]

    llm_api_provenance = [{"repo": repo, "file": yaml_keys["file"], "commit": yaml_keys["commit"]}]
    bench_tool = {
        "provenance": _provenance(repo, files["trtllm-bench"]),
        "notes": list(bench.get("notes", [])) + [bench["version"]],
        "positional": [],
        "options": _options(bench["group_options"]),
        "subcommands": {
            name: {"commit": sub["commit"], "options": _options(sub["options"]), "notes": list(sub.get("notes", []))}
            for name, sub in sorted(bench["subcommands"].items())
        },
    }
    serve_12 = serve["v1.2"]
    serve_main = serve["main"]
    versions = {
        "1.2": {
            "description": "TensorRT-LLM 1.2.x line: trtllm-build and the TensorRT engine backend still ship.",
            "tools": {
                "trtllm-build": {
                    "provenance": _provenance(repo, files["trtllm-build"]),
                    "entry": build["entry"],
                    "notes": [build["version"], *build.get("notes", [])],
                    "positional": [],
                    "options": _options(build["options"]),
                },
                "trtllm-serve": {
                    "provenance": _provenance(repo, files["trtllm-serve v1.2"]),
                    "entry": serve_12["entry"],
                    "notes": list(serve_12.get("notes") or []),
                    "positional": serve_12["positional"],
                    "options": _options(serve_12["options"]),
                    "subcommands": {
                        name: {"positional": sub.get("positional", []), "options": _options(sub["options"])}
                        for name, sub in sorted(serve_12.get("subcommands", {}).items())
                    },
                },
                "trtllm-bench": bench_tool,
            },
            "llm_api_yaml": {
                "provenance": llm_api_provenance,
                "note": yaml_keys["note"],
                # The reference lists the keys that matter to MoE/NVFP4 serving, not every LlmArgs field.
                "complete": False,
                "keys": yaml_keys["keys"],
            },
        },
        "main": {
            "description": "TensorRT-LLM 1.3 and later (main): no trtllm-build, pytorch backend only.",
            "tools": {
                "trtllm-serve": {
                    "provenance": _provenance(repo, files["trtllm-serve main"]),
                    "entry": serve_main["entry"],
                    "notes": list(serve_main.get("notes") or []),
                    "positional": serve_main["positional"],
                    "options": _options(serve_main["options"]),
                },
            },
            "llm_api_yaml": {
                "provenance": llm_api_provenance,
                "note": yaml_keys["note"] + ". Not re-read at a main commit: main is checked against the keys "
                "read on the 1.2 line (inherited_from), the newest llm_args.py the reference holds.",
                "inherited_from": "1.2",
                "complete": False,
                "keys": yaml_keys["keys"],
            },
            "http_endpoints": {
                "provenance": _provenance(repo, files["http_endpoints"]),
                "routes": endpoints["routes"],
            },
        },
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "scripts/import_trtllm_spec.py",
        "imported_from": reference_name,
        "source": {
            "repo": repo,
            "method": source["method"],
            "version_anchors": source["version_anchors"],
        },
        "versions": versions,
    }


def render(spec: dict[str, Any]) -> str:
    return json.dumps(spec, indent=1, sort_keys=False, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reference", nargs="?", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true", help="Exit 1 if --out differs from what would be written.")
    args = parser.parse_args(argv)
    reference = json.loads(args.reference.read_text())
    text = render(convert(reference, "shared/reference/trtllm-cli.json"))
    if args.check:
        current = args.out.read_text() if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is out of date; run python scripts/import_trtllm_spec.py")
            return 1
        print(f"{args.out} is current")
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
