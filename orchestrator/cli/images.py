"""`orchestrator images show|lock`: the pinned TRT-LLM images."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from orchestrator.cli._options import DryRunOpt, JsonOpt

app = typer.Typer(help="The pinned TensorRT-LLM images (docker/images.lock.yaml).", no_args_is_help=True)

TagsArg = Annotated[
    Optional[list[str]],  # noqa: UP045 - Typer needs Optional here on Python 3.10
    typer.Argument(help="Only these tags (default: every image in the lock).", show_default=False),
]


def _cell(value: object) -> str:
    if value is None:
        return "?"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@app.command("show")
def show(as_json: JsonOpt = False) -> None:
    """Print the image lock: image, versions, architecture, digest per platform."""
    import json
    from dataclasses import asdict

    from orchestrator.images import load_lock, pins
    from orchestrator.render import console

    lock = load_lock()
    rows = pins(lock)
    if as_json:
        images = {tag: asdict(entry) for tag, entry in lock.images.items()}
        print(json.dumps({"lock": str(lock.path), "pins": rows, "images": images}, indent=2, default=str))
        return
    out = console()
    out.print(f"[bold]{lock.path}[/]  ('?' = not known)")
    for row in rows:
        out.print(f"\n{row['platform']:<13} {row['backend']:<9} {row['arch']:<8} TRT-LLM {_cell(row['trtllm']):<10} "
                  f"CUDA {_cell(row['cuda']):<7} torch {_cell(row['torch']):<6} modelopt {_cell(row['modelopt']):<5} "
                  f"trtllm-build {_cell(row['trtllm_build'])}", markup=False)
        pinned = "pinned by digest" if row["digest"] else "digest not locked: runs by tag"
        out.print(f"  {row['image']}  ({pinned})", markup=False)
    for entry in lock.images.values():
        digests = ", ".join(f"{arch} {digest or '?'}" for arch, digest in entry.digests.items())
        out.print(f"\n[bold]{entry.ref}[/]" + ("  (moving tag: never pinned)" if entry.moving else ""))
        out.print(f"  digests: {digests}", markup=False)
        out.print(f"  source:  {entry.source}", markup=False)


@app.command("lock")
def lock(tags: TagsArg = None, dry_run: DryRunOpt = False) -> None:
    """Resolve image digests from the registry (through the Docker engine) and rewrite the lock."""
    from orchestrator.errors import UserError
    from orchestrator.images import load_lock, resolve_digests, write_lock
    from orchestrator.runtime.docker import docker_client

    current = load_lock()
    results = resolve_digests(current, docker_client(), tags)
    for result in results:
        if result.error:
            print(f"{result.ref}: not resolved ({result.error})")
        else:
            missing = f"; no image for {', '.join(result.missing)}" if result.missing else ""
            print(f"{result.ref}: {result.digest} ({', '.join(result.present) or 'none of our architectures'}{missing})")
    changed = False if dry_run else write_lock(current, results)
    failed = [r for r in results if r.error]
    if changed:
        print(f"wrote {current.path}")
    elif not dry_run and len(failed) < len(results):
        print(f"{current.path} is up to date")
    if failed:
        raise UserError(f"{len(failed)} of {len(results)} image(s) not resolved through the Docker engine "
                        f"(first: {failed[0].ref}: {failed[0].error})",
                        hint="run `orchestrator images lock` where nvcr.io is reachable (after `docker login nvcr.io`)")
