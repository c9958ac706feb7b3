"""DockerRunner: a stage's argv in the pinned TRT-LLM image, through the docker SDK (never the docker CLI).

What the container sees (`path_in_runtime` maps host paths onto these mount points):

    <workdir>              -> /workspace                  read-write (checkpoints, engine, logs)
    <local source model>   -> /models/source              read-only  (when the model is a local directory)
    <HF_HOME>              -> /root/.cache/huggingface    read-only  (when it exists on the host)

Settings follow NVIDIA's TensorRT-LLM container guidance (`docker run --gpus all --ipc=host
--ulimit memlock=-1 --ulimit stack=67108864`, the DGX Spark playbooks): with `--ipc=host` the
container shares the host's /dev/shm, so no shm size is set (Docker ignores one then). They
apply on GPU platforms, where TRT-LLM runs; a GPU-less platform gets a plain container.
Containers are named `orchestrator-<recipe>-<stage>`, run with an init process (so Ctrl-C
reaches trtllm-serve's MPI workers) and are removed on success, failure and Ctrl-C; a
detached server is removed by `orchestrator stop`. Environment values never reach a log:
the log and console get names only, and secret values are masked in the tool's output.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import shlex
import sys
import threading
from pathlib import Path, PurePosixPath
from typing import Any

from orchestrator.errors import MissingToolError, UserError
from orchestrator.layout import WorkdirLayout
from orchestrator.runtime.base import SECRET_NAME, Job, Mount, Redactor

CONTAINER_WORKDIR = Path("/workspace")
CONTAINER_MODEL = Path("/models/source")
CONTAINER_HF_HOME = Path("/root/.cache/huggingface")
# NVIDIA's TRT-LLM `docker run` flags: unlimited locked memory (pinned host buffers, NCCL) and a 64 MiB stack.
ULIMITS = {"memlock": -1, "stack": 67108864}
IPC_MODE = "host"
# Inside the container the server must listen on the container's own interfaces; the published
# port is where access is restricted (bound to the recipe's serve.host on the host side).
CONTAINER_LISTEN_HOST = "0.0.0.0"
LISTEN_FLAG = "--host"
STOP_GRACE_S = 10.0
LABEL = "org.trtllm-orchestrator"
DOCKER_PLATFORMS = {"x86_64": "linux/amd64", "aarch64": "linux/arm64"}
_HOST_ARCH_ALIASES = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}
DEFAULT_SECRET_ENV: tuple[str, ...] = next(f.default for f in dataclasses.fields(Job) if f.name == "secret_env")


def docker_client():
    """A connected docker SDK client; MissingToolError (exit 2) when the SDK or the engine is missing."""
    try:
        import docker
    except ImportError:
        raise MissingToolError("the docker Python SDK is not installed", hint="pip install 'docker>=7.1'") from None
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        raise MissingToolError(f"no Docker engine answers ({_short(exc)})",
                               hint="start Docker (systemctl start docker) and install the NVIDIA Container Toolkit "
                                    "for GPU access") from None
    return client


def _short(exc: BaseException) -> str:
    """One line from a docker/requests exception (they carry whole HTTP bodies)."""
    text = getattr(exc, "explanation", None) or str(exc)
    return " ".join(str(text).split())[:300]


def host_arch() -> str:
    machine = platform.machine().lower()
    return _HOST_ARCH_ALIASES.get(machine, machine)


def hf_home() -> Path:
    """The host's Hugging Face home (token, hub cache), as huggingface_hub resolves it."""
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser()
    cache = Path(os.environ.get("XDG_CACHE_HOME", "~/.cache")).expanduser()
    return cache / "huggingface"


def local_source_model(recipe) -> Path | None:
    """The recipe's source model when it is a directory on this machine (built-in, local path, or fetched link)."""
    from orchestrator.models import builtin_model_dir

    if recipe.model.is_builtin:
        candidate = builtin_model_dir(recipe.model.source)
    else:
        candidate = Path(recipe.model.source).expanduser()
    if candidate.is_dir():
        return candidate.resolve()
    fetched = WorkdirLayout(Path(os.path.abspath(recipe.resolved_workdir))).source_model
    if fetched.is_symlink() and fetched.resolve().is_dir():
        return fetched.resolve()
    return None


class _LogTee:
    """Copies a container's output, line by line with secrets masked, to the job's log file and the console."""

    def __init__(self, container, log_path: Path, redact: Redactor, echo: bool):
        self.container = container
        self.log_path = log_path
        self.redact = redact
        self.echo = echo

    def run(self) -> None:
        pending = b""
        with open(self.log_path, "ab") as log:
            for chunk in self.container.logs(stream=True, follow=True, stdout=True, stderr=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._emit(log, line + b"\n")
            if pending:
                self._emit(log, pending + b"\n")

    def _emit(self, log, raw: bytes) -> None:
        text = self.redact(raw.decode("utf-8", "replace"))
        log.write(text.encode())
        log.flush()
        if self.echo:
            sys.stdout.write(text)
            sys.stdout.flush()


def _log_header(job: Job, image: str, redact: Redactor, env_names: list[str]) -> str:
    return (f"$ {redact(shlex.join(job.argv))}\n"
            f"# docker image {image}; env (values not logged): {', '.join(env_names) or '-'}\n")


class DockerHandle:
    """A container started by DockerRunner.start (or found again by attach)."""

    def __init__(self, container, log_path: Path, tee: threading.Thread | None = None,
                 redact: Redactor | None = None):
        self.container = container
        self.log_path = log_path
        self._tee = tee
        self._redact = redact or Redactor({}, ())
        self._exit_code: int | None = None

    def poll(self) -> int | None:
        """None while the container runs, else its exit code (0 once it is gone)."""
        if self._exit_code is not None:
            return self._exit_code
        import docker

        try:
            self.container.reload()
        except docker.errors.NotFound:
            self._exit_code = 0
            return 0
        if self.container.status in ("created", "running", "restarting", "paused"):
            return None
        return int(self.container.attrs["State"]["ExitCode"])

    def stop(self, timeout: float = 30.0) -> int:
        """SIGINT (trtllm-serve's clean shutdown), SIGKILL after `timeout`; then the container is removed."""
        code = self.poll()
        if self._exit_code is not None:
            return self._exit_code
        if code is None:
            code = _interrupt(self.container, timeout)
        if self._tee is not None:
            self._tee.join(timeout=10)
        else:
            self._save_logs()
        _remove(self.container)
        self._exit_code = code
        return code

    def _save_logs(self) -> None:
        """A detached container's output goes to its log file before the container (and its logs) is removed."""
        try:
            output = self.container.logs(stdout=True, stderr=True).decode("utf-8", "replace")
        except Exception:  # noqa: BLE001 - best effort: the container may already be gone
            return
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "a") as log:
            log.write(self._redact(output))

    def log_tail(self, lines: int = 30) -> list[str]:
        from orchestrator.runtime.local import log_tail

        if self._tee is None and self._exit_code is None:
            try:
                text = self.container.logs(tail=lines).decode("utf-8", "replace")
                return self._redact(text).splitlines()
            except Exception:  # noqa: BLE001 - fall back to the file
                pass
        return log_tail(self.log_path, lines)

    def state(self) -> dict[str, Any]:
        return {"runtime": "docker", "container_id": self.container.id, "container_name": self.container.name,
                "log_path": str(self.log_path)}


def _interrupt(container, grace_s: float) -> int:
    """Ask the container to stop like Ctrl-C would, wait `grace_s`, then kill; its exit code."""
    import requests

    import docker

    try:
        container.kill(signal="SIGINT")
        return int(container.wait(timeout=grace_s)["StatusCode"])
    except (requests.exceptions.ConnectionError, requests.exceptions.ReadTimeout):
        pass  # still running after the grace period
    except docker.errors.APIError:
        pass  # already exited between poll and kill
    try:
        container.kill()
        return int(container.wait(timeout=30)["StatusCode"])
    except docker.errors.APIError:
        container.reload()
        return int(container.attrs["State"]["ExitCode"])


def _remove(container) -> None:
    import docker

    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass


class DockerRunner:
    """Runs a recipe's TRT-LLM commands in its pinned image (docker/images.lock.yaml), by digest when locked.

    image: a reference to use instead of the lock's (tests, `docker build`-made images).
    pull: fetch the image when it is not present (else a missing image is an error at once).
    """

    name = "docker"

    def __init__(self, recipe, *, image: str | None = None, client=None, pull: bool = True, echo: bool = True):
        self.recipe = recipe
        self.arch = recipe.platform_info.arch
        self.pull = pull
        self.echo = echo
        self._client = client
        self.locked = image is None
        # NVIDIA's TRT-LLM settings (GPUs, host IPC, memlock/stack) where TRT-LLM runs: GPU platforms.
        self.trtllm_settings = recipe.platform_info.has_gpu
        if image is None:
            from orchestrator.images import image_for

            entry = image_for(recipe.platform.value, recipe.build.backend.value, recipe.image)
            if entry is None:
                raise UserError(f"platform {recipe.platform.value} has no TRT-LLM image in the image lock",
                                hint="use runtime: local (platform cpu runs everything here)")
            image = entry.pinned_ref(self.arch)
        self.image = image
        self.workdir = Path(os.path.abspath(recipe.resolved_workdir))
        self.mounts = self._default_mounts()

    # -- what the container sees ---------------------------------------------------------------

    def _default_mounts(self) -> tuple[Mount, ...]:
        mounts = [Mount(self.workdir, CONTAINER_WORKDIR, read_only=False)]
        source = local_source_model(self.recipe)
        if source is not None and not source.is_relative_to(self.workdir.resolve()):
            mounts.append(Mount(source, CONTAINER_MODEL, read_only=True))
        home = hf_home()
        if home.is_dir():
            mounts.append(Mount(home.resolve(), CONTAINER_HF_HOME, read_only=True))
        return tuple(mounts)

    def _all_mounts(self, job: Job | None) -> tuple[Mount, ...]:
        return self.mounts + (tuple(job.mounts) if job is not None else ())

    def path_in_runtime(self, host_path: Path, job: Job | None = None) -> Path:
        """Where `host_path` appears in the container; UserError when no mount makes it visible."""
        mounts = sorted(self._all_mounts(job), key=lambda m: len(Path(m.host).parts), reverse=True)
        absolute = Path(os.path.abspath(Path(host_path).expanduser()))
        # The resolved path first: a link inside the workdir to a model elsewhere must map to that model's mount.
        for candidate in (absolute.resolve(), absolute):
            for mount in mounts:
                for host in (Path(os.path.abspath(mount.host)), Path(mount.host).resolve()):
                    if candidate.is_relative_to(host):
                        return Path(mount.container) / candidate.relative_to(host)
        raise UserError(f"{host_path} is not visible inside the container: only the workdir ({self.workdir}), the "
                        "local source model and the HF cache are mounted",
                        hint="put the file under the workdir")

    def _environment(self, job: Job) -> dict[str, str]:
        """job.env plus the secrets (HF_TOKEN, ...) set here, passed by name; nothing else of ours leaks in."""
        env = dict(job.env)
        for name in job.secret_env:
            if name not in env and os.environ.get(name):
                env[name] = os.environ[name]
        if any(Path(m.container) == CONTAINER_HF_HOME for m in self.mounts):
            env.setdefault("HF_HOME", str(CONTAINER_HF_HOME))
        return env

    def _ulimits(self) -> dict[str, int]:
        return dict(ULIMITS) if self.trtllm_settings else {}

    def _device_requests(self) -> list[dict[str, Any]]:
        """`--gpus all` (Count -1) or the recipe's serve.gpus ids; none on a platform without a GPU."""
        if not self.trtllm_settings:
            return []
        gpus = self.recipe.serve.gpus
        if gpus == "all":
            return [{"Driver": "", "Count": -1, "DeviceIDs": None, "Capabilities": [["gpu"]], "Options": {}}]
        return [{"Driver": "", "Count": 0, "DeviceIDs": [str(g) for g in gpus], "Capabilities": [["gpu"]],
                 "Options": {}}]

    def _command(self, job: Job) -> list[str]:
        """job.argv; a published server listens on the container's interfaces (see CONTAINER_LISTEN_HOST)."""
        argv = list(job.argv)
        if job.ports and LISTEN_FLAG in argv[:-1]:
            argv[argv.index(LISTEN_FLAG) + 1] = CONTAINER_LISTEN_HOST
        return argv

    def container_name(self, job: Job) -> str:
        return f"orchestrator-{self.recipe.name}-{job.stage}"

    def create_kwargs(self, job: Job) -> dict[str, Any]:
        """The docker SDK `containers.create` arguments for `job` (container_spec shows the same, readable)."""
        from docker.types import DeviceRequest, Ulimit
        from docker.types import Mount as DockerMount

        mounts = [DockerMount(target=str(PurePosixPath(m.container)), source=str(m.host), type="bind",
                              read_only=m.read_only) for m in self._all_mounts(job)]
        cwd = self.path_in_runtime(job.cwd, job) if job.cwd is not None else CONTAINER_WORKDIR
        return {
            "image": self.image,
            "command": self._command(job),
            "name": self.container_name(job),
            "working_dir": str(cwd),
            "environment": self._environment(job),
            "mounts": mounts,
            "device_requests": [DeviceRequest(driver=r["Driver"], count=r["Count"], device_ids=r["DeviceIDs"],
                                              capabilities=r["Capabilities"]) for r in self._device_requests()],
            "ipc_mode": IPC_MODE if self.trtllm_settings else None,
            "ulimits": [Ulimit(name=name, soft=value, hard=value) for name, value in self._ulimits().items()],
            "ports": {f"{port}/tcp": (host, host_port) for port, (host, host_port) in job.ports.items()},
            "init": True,
            "labels": {LABEL: "1", f"{LABEL}.recipe": self.recipe.name, f"{LABEL}.stage": job.stage},
            "stdin_open": False,
            "tty": False,
            "detach": True,
        }

    def container_spec(self, job: Job) -> dict[str, Any]:
        """What `orchestrator plan` shows: image, mounts, GPU request, ports, env names (never values)."""
        env = self._environment(job)
        secret = [n for n in sorted(env) if n in job.secret_env or SECRET_NAME.search(n)]
        mounts = self._all_mounts(job)
        cwd = self.path_in_runtime(job.cwd, job) if job.cwd is not None else CONTAINER_WORKDIR
        return {
            "image": self.image,
            "pinned_by_digest": "@sha256:" in self.image,
            "platform": DOCKER_PLATFORMS.get(self.arch, self.arch),
            "name": self.container_name(job),
            "command": self._command(job),
            "working_dir": str(cwd),
            "mounts": [{"host": str(m.host), "container": str(m.container), "mode": "ro" if m.read_only else "rw"}
                       for m in mounts],
            "device_requests": self._device_requests(),
            "ipc_mode": IPC_MODE if self.trtllm_settings else "docker default",
            "shm": "host /dev/shm (ipc host)" if self.trtllm_settings else "docker default",
            "ulimits": self._ulimits(),
            "ports": {f"{port}/tcp": f"{host}:{host_port}" for port, (host, host_port) in job.ports.items()},
            "env": sorted(env),
            "secret_env": secret,
            "init": True,
            "remove": "on success, failure and Ctrl-C",
        }

    # -- running ----------------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._client = docker_client()
        return self._client

    def ensure_image(self) -> None:
        """The image is present, pulled now if allowed; UserError naming the image and the fix otherwise."""
        import docker

        if self.locked and host_arch() != self.arch:
            raise UserError(f"platform {self.recipe.platform.value} runs {self.arch} images; this machine is "
                            f"{host_arch()}", hint="run on the target machine, or pick the recipe's platform to match")
        try:
            self.client.images.get(self.image)
            return
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            raise UserError(f"cannot inspect image {self.image}: {_short(exc)}") from None
        fix = (f"`docker pull {self.image}` (after `docker login nvcr.io` for NGC images), or "
               "`orchestrator images lock` where the registry is reachable")
        if not self.pull:
            raise UserError(f"image {self.image} is not present on this Docker engine", hint=fix)
        print(f"pulling {self.image} (first use; TRT-LLM images are tens of GB)", file=sys.stderr)
        try:
            self.client.images.pull(self.image, platform=DOCKER_PLATFORMS.get(self.arch) if self.locked else None)
        except docker.errors.APIError as exc:
            raise UserError(f"pulling image {self.image} failed: {_short(exc)}", hint=fix) from None

    def _check_mounts(self, job: Job) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        for mount in self._all_mounts(job):
            if not Path(mount.host).exists():
                raise UserError(f"{mount.host} does not exist, so it cannot be mounted at {mount.container}")

    def _clear_stale(self, name: str) -> None:
        """A container left by a killed orchestrator (same name) is removed; a running one is an error."""
        import docker

        try:
            old = self.client.containers.get(name)
        except docker.errors.NotFound:
            return
        if old.status == "running":
            raise UserError(f"container {name} is already running (an earlier run or a detached server)",
                            hint=f"orchestrator stop RECIPE, or docker rm -f {name}")
        _remove(old)

    def create(self, job: Job):
        """Create (not start) the container for `job`: image checked, mounts checked, stale container cleared."""
        import docker

        self.ensure_image()
        self._check_mounts(job)
        job.log_path.parent.mkdir(parents=True, exist_ok=True)
        kwargs = self.create_kwargs(job)
        self._clear_stale(kwargs["name"])
        try:
            return self.client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            raise UserError(f"docker could not create the {job.stage} container from {self.image}: {_short(exc)}") \
                from None

    def _start(self, container, job: Job) -> Redactor:
        import docker

        env = self._environment(job)
        redact = Redactor(env, job.secret_env)
        with open(job.log_path, "w") as log:
            log.write(_log_header(job, self.image, redact, sorted(env)))
        try:
            container.start()
        except docker.errors.APIError as exc:
            _remove(container)
            message = _short(exc)
            hint = None
            if "device driver" in message or "nvidia" in message.lower():
                hint = "install the NVIDIA Container Toolkit and restart Docker (`docker run --gpus all ...` must work)"
            elif "rlimit" in message:
                hint = ("this Docker engine may not raise the memlock/stack limits NVIDIA recommends (rootless or "
                        "nested Docker?); run a rootful engine")
            raise UserError(f"docker could not start the {job.stage} container: {message}", hint=hint) from None
        return redact

    def run(self, job: Job) -> int:
        """Run to completion, streaming the log to the console and job.log_path; the container's exit code.

        Ctrl-C (or SIGTERM) stops the container, removes it, and is re-raised.
        """
        from orchestrator.runtime.serve_process import termination_as_interrupt

        container = self.create(job)
        try:
            with termination_as_interrupt():
                redact = self._start(container, job)
                try:
                    _LogTee(container, job.log_path, redact, self.echo).run()
                    return int(container.wait()["StatusCode"])
                except KeyboardInterrupt:
                    _interrupt(container, STOP_GRACE_S)
                    raise
        finally:
            _remove(container)

    def start(self, job: Job, detach: bool = False) -> DockerHandle:
        """Start in the background (serve). detach=True: no tee thread; the log is saved when it is stopped."""
        container = self.create(job)
        try:
            redact = self._start(container, job)
        except BaseException:
            _remove(container)
            raise
        if detach:
            return DockerHandle(container, job.log_path, redact=redact)
        tee = threading.Thread(target=_LogTee(container, job.log_path, redact, self.echo).run, daemon=True)
        tee.start()
        return DockerHandle(container, job.log_path, tee, redact)

    def attach(self, state: dict[str, Any]) -> DockerHandle:
        """The handle of a detached server container, from DockerHandle.state()."""
        import docker

        log_path = Path(state["log_path"])
        try:
            container = self.client.containers.get(state["container_id"])
        except docker.errors.NotFound:
            handle = DockerHandle(None, log_path)
            handle._exit_code = 0
            return handle
        return DockerHandle(container, log_path, redact=Redactor(dict(os.environ), DEFAULT_SECRET_ENV))
