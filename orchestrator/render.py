"""Terminal rendering (rich) of plans and reports; kept out of the library functions."""

from __future__ import annotations

import json
import shlex
from dataclasses import asdict


def console():
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def print_plan(recipe, stages, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps({"recipe": recipe.name, "stages": [asdict(s) for s in stages]}, indent=2))
        return
    out = console()
    out.print(f"[bold]{recipe.name}[/]: {recipe.model.source} -> {recipe.quantize.format.value} on "
              f"{recipe.platform.value} ({recipe.platform_info.gpu}, {recipe.platform_info.sm_label}), "
              f"backend {recipe.build.backend.value}, workdir {recipe.resolved_workdir}")
    for st in stages:
        mark = "[green]run [/]" if st.runs else "[yellow]skip[/]"
        out.print(f"\n{mark} [bold]{st.name}[/]" + (f"  ({st.reason})" if st.reason else ""))
        out.print(f"     where:   {st.where}")
        if st.inputs:
            out.print(f"     inputs:  {', '.join(st.inputs)}")
        if st.outputs:
            out.print(f"     outputs: {', '.join(st.outputs)}")
        if st.argv:
            out.print(f"     argv:    {shlex.join(st.argv)}", markup=False)
        if st.container:
            out.print("     container: " + json.dumps(st.container, sort_keys=True), markup=False)
        for name, content in st.files.items():
            out.print(f"     writes {name}:", markup=False)
            for line in content.rstrip().splitlines():
                out.print(f"       {line}", markup=False)


def print_doctor(report, as_json: bool = False) -> None:
    if as_json:
        print(json.dumps(asdict(report), indent=2))
        return
    out = console()
    if report.gpus:
        for g in report.gpus:
            out.print(f"GPU {g.index}: {g.name}, SM{g.sm}, {g.memory_gb:.0f} GB, driver {g.driver}")
    else:
        out.print(f"GPU: none ({report.gpu_note}); CPU-only machine: quantize/convert of small models, plan, validate")
    out.print(f"Docker: {report.docker}; NVIDIA runtime: {'yes' if report.nvidia_runtime else 'no'}")
    for tool, version in report.tools.items():
        out.print(f"{tool}: {version or 'not on PATH'}")
    for pkg, version in report.packages.items():
        out.print(f"{pkg}: {version or 'not installed'}")
    out.print(f"free disk: {report.free_disk_gb:.1f} GB")
    if report.verdict:
        out.print("\n[bold]verdict[/]")
        colours = {"ok": "green", "warn": "yellow", "fail": "red"}
        for level, message in report.verdict:
            out.print(f"  [{colours[level]}]{level:4}[/] {message}")
