"""The Ray runner: the decode + encode stages of an indexing run on a Ray cluster.

Listing, hashing and the diff against the catalog stay on the driver (`Ingest.run`), as in a
local run. The files left to encode become a Ray Data dataset; `map_batches` sends them to a
pool of actors, each of which loads the model once and runs the local pipeline's own decode
and encode code (`ingest_encode.EncodeStage`) with a writer that captures its commits instead
of writing them. The captured commits stream back to the driver, which writes each one in its
own transaction through the run's `CatalogWriter`, exactly as a local run would: a killed
driver or worker loses at most the batches not yet committed, and a re-run encodes only those.
"""

from __future__ import annotations

import logging
import pickle
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from mmsearch.config import Settings
from mmsearch.encoders.base import ModelSpec
from mmsearch.errors import ClusterError, IndexCancelled, MmsearchError, ModelMismatchError
from mmsearch.ingest_decode import Decoder
from mmsearch.ingest_encode import EncodeStage
from mmsearch.ingest_plan import Job
from mmsearch.ingest_run import RunState
from mmsearch.ingest_write import Encoded
from mmsearch.media import FoundFile
from mmsearch.results import Progress
from mmsearch.store.catalog_items import ItemFacts
from mmsearch.version import __version__

if TYPE_CHECKING:
    from mmsearch.ingest import Ingest

LOCAL = "local"
"""`--ray` without an address: this machine's running cluster, else a new one on loopback."""
_PROBE_FILES = 16
"""Files each node is asked to open before the run (first and last of the list, and spread)."""


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(
            "Indexing on Ray needs the `ray` package: pip install 'mmsearch[ray]' "
            "(on the driver and on every node of the cluster)."
        ) from None
    return ray


# -- on the workers ---------------------------------------------------------------------------


class _Capture:
    """A `Writer` that keeps the encode stage's writes as records, for the driver to write."""

    def __init__(self) -> None:
        self.records: list[tuple[Any, ...]] = []

    def fail(self, facts: ItemFacts, reason: str) -> None:
        self.records.append(("fail", facts, reason))

    def commit(self, batch: Encoded, replaced: set[str]) -> None:
        self.records.append(("commit", batch))


def _check_node(paths: list[str], version: str) -> dict[str, Any]:
    """On one node: which of `paths` it cannot open, and whether its mmsearch is the driver's."""
    import socket

    unreadable = []
    for path in paths:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            unreadable.append(f"{path} ({exc.strerror or exc})")
    return {"host": socket.gethostname(), "version": __version__, "wanted": version,
            "unreadable": unreadable}


class EncodeWorker:
    """A Ray Data actor: the index's model, loaded once, encoding batches of files."""

    def __init__(self, spec: dict[str, Any], settings: dict[str, Any], version: str) -> None:
        if version != __version__:
            raise ClusterError(
                f"this Ray worker has mmsearch {__version__}, the driver {version}: install the "
                "same version on every node"
            )
        from mmsearch.encoders.registry import load_encoder

        self.settings = Settings(**settings)
        t = time.perf_counter()
        model = ModelSpec.from_json(spec)
        self.encoder = load_encoder(
            model, device=self.settings.device, cache_dir=self.settings.model_cache()
        )
        self.load_seconds = time.perf_counter() - t
        self.pool = ThreadPoolExecutor(self.settings.workers(), thread_name_prefix="mmsearch-read")

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        jobs = [
            Job(FoundFile(str(path), int(size), int(mtime), str(kind)), str(root), None,
                float(start) or None)
            for path, size, mtime, kind, root, start in zip(
                batch["path"], batch["size"], batch["mtime_ns"], batch["kind"], batch["root"],
                batch["resume_at"],
            )
        ]
        state, capture = RunState(), _Capture()
        stage = EncodeStage(self.settings, state, Decoder(self.settings, state), capture)
        stage.run(self.encoder, jobs, self.pool)
        stages = dict(state.report.stage_seconds)
        if self.load_seconds:  # once per actor: its model load
            stages["load_model"], self.load_seconds = self.load_seconds, 0.0
        payload = pickle.dumps(
            {"spaces": self.encoder.all_spaces(), "records": capture.records, "stages": stages,
             "notes": state.report.notes, "files": len(jobs),
             "last": jobs[-1].file.path if jobs else ""},
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        return {"payload": np.array([payload], dtype=object)}


# -- on the driver ----------------------------------------------------------------------------


class RayRunner:
    """Encodes an ingest run's files on a Ray cluster (`address`: "local", or a cluster's)."""

    def __init__(self, address: str, spec: ModelSpec, settings: Settings) -> None:
        self.address = address
        self.spec = spec
        self.settings = settings

    def encode(self, ingest: Ingest, jobs: list[Job]) -> None:
        ray = _ray()
        self._connect(ray)
        self._check_nodes(ray, jobs)
        t = time.perf_counter()
        replaced = {job.file.path for job in jobs if job.row is not None}
        committed: set[tuple[str, float | None]] = set()
        done = 0
        state = ingest.state
        state.progress(Progress("encode", 0, len(jobs)))
        for payload in self._results(ray, jobs):
            self._ensure_spaces(ingest, payload["spaces"])
            for record in payload["records"]:
                self._replay(ingest, record, replaced, committed)
            state.report.notes.extend(payload["notes"])
            for stage, seconds in payload["stages"].items():
                # worker seconds add up across the cluster
                state.add_seconds("worker_" + stage, seconds)
            done += payload["files"]
            state.progress(Progress("encode", min(done, len(jobs)), len(jobs), payload["last"]))
            if state.cancelled():
                break  # ends the dataset's execution; what came back is committed
        state.stage("ray", t)

    def _connect(self, ray: Any) -> None:
        # The run reports its own progress (`Progress`); Ray Data's bars and logs would
        # interleave with the shell's.
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = False
        context.print_on_execution_start = False
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        if ray.is_initialized():
            if self.address == LOCAL or ray.get_runtime_context().gcs_address == self.address:
                return  # this process is connected already (a run before this one)
            ray.shutdown()  # connected to another cluster
        options: dict[str, Any] = {"logging_level": "WARNING", "log_to_driver": False}
        self._check_reachable()
        try:
            if self.address == LOCAL:
                # A cluster already running on this machine, else a new one on loopback only.
                ray.init(include_dashboard=False, _node_ip_address="127.0.0.1", **options)
            else:
                ray.init(address=self.address, **options)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(
                f"Cannot reach the Ray cluster at {self.address}: {exc}. Start it "
                "(`ray start --head`) or give its address (`--ray HOST:6379`)."
            ) from None

    def _check_reachable(self) -> None:
        """Fail in seconds when nothing listens at HOST:PORT (Ray itself retries for minutes)."""
        import socket

        host, _, port = self.address.rpartition(":")
        if self.address == LOCAL or "://" in self.address or not port.isdigit():
            return
        try:
            with socket.create_connection((host, int(port)), timeout=10):
                return
        except OSError as exc:
            raise ClusterError(
                f"Cannot reach the Ray cluster at {self.address}: {exc.strerror or exc}. Start it "
                "(`ray start --head`) or give its address (`--ray HOST:6379`)."
            ) from None

    def _check_nodes(self, ray: Any, jobs: list[Job]) -> None:
        """Every node that may run a worker must open the files and run this mmsearch."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        step = max(1, len(jobs) // _PROBE_FILES)
        paths = list(dict.fromkeys([j.file.path for j in jobs[::step]] + [jobs[-1].file.path]))
        check = ray.remote(num_cpus=0)(_check_node)
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")]
        refs = [
            check.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
            ).remote(paths, __version__)
            for n in nodes
        ]
        try:
            answers = ray.get(refs, timeout=120)
        except Exception as exc:  # noqa: BLE001 - whatever a node raised becomes one line
            raise ClusterError(_worker_failure(exc)) from None
        for answer in answers:
            if answer["version"] != answer["wanted"]:
                raise ClusterError(
                    f"The Ray node {answer['host']} has mmsearch {answer['version']}, this "
                    f"machine {answer['wanted']}: install the same version on every node."
                )
            if answer["unreadable"]:
                raise ClusterError(
                    f"The Ray node {answer['host']} cannot read {answer['unreadable'][0]} (and "
                    f"{len(answer['unreadable']) - 1} more of {len(paths)} checked): the files "
                    "must be at the same paths on every node (a shared file system)."
                )

    def _results(self, ray: Any, jobs: list[Job]) -> Iterator[dict[str, Any]]:
        """The dataset of files to encode, through the actor pool; payloads as they arrive."""
        import pyarrow as pa

        settings = self.settings
        model_batch = settings.ray_batch_size or settings.batch_size
        per_call = 4 * model_batch  # decode threads run ahead of the model inside a call
        table = pa.table({
            "path": [j.file.path for j in jobs],
            "size": pa.array([j.file.size for j in jobs], pa.int64()),
            "mtime_ns": pa.array([j.file.mtime_ns for j in jobs], pa.int64()),
            "kind": [j.file.kind for j in jobs],
            "root": [j.root for j in jobs],
            "resume_at": pa.array([j.resume_at or 0.0 for j in jobs], pa.float64()),
        })
        blocks = [table.slice(i, per_call) for i in range(0, len(jobs), per_call)]
        # No more actors than blocks: an actor with nothing to do would still load the model.
        workers = min(settings.ray_workers or self._cluster_size(ray), len(blocks))
        worker_settings = settings.with_overrides(batch_size=model_batch).model_dump(mode="json")
        dataset = ray.data.from_arrow(blocks).map_batches(
            EncodeWorker,
            fn_constructor_kwargs={
                "spec": self.spec.to_json(), "settings": worker_settings, "version": __version__,
            },
            batch_size=per_call,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=settings.ray_worker_cpus,
            num_gpus=settings.ray_worker_gpus or None,
        )
        try:
            for row in dataset.iter_rows():
                yield pickle.loads(row["payload"])
        except (IndexCancelled, MmsearchError):
            raise
        except Exception as exc:  # noqa: BLE001 - Ray wraps workers' errors in many types
            raise ClusterError(_worker_failure(exc)) from None

    def _cluster_size(self, ray: Any) -> int:
        """Workers that fit the cluster at once: by GPUs for GPU workers, else by CPUs."""
        resources = ray.cluster_resources()
        settings = self.settings
        if settings.ray_worker_gpus:
            return max(1, int(resources.get("GPU", 0) / settings.ray_worker_gpus))
        return max(1, int(resources.get("CPU", 1) / settings.ray_worker_cpus))

    @staticmethod
    def _ensure_spaces(ingest: Ingest, dims: dict[str, int]) -> None:
        known = ingest.spaces.dims
        clash = {s: d for s, d in dims.items() if s in known and known[s] != d}
        if clash:
            raise ModelMismatchError(
                f"The Ray workers' model gives vectors of {clash} dimensions, but the index "
                f"holds {known}: every node must have the same model weights."
            )
        if any(s not in known for s in dims):
            ingest.spaces.ensure(dims)

    @staticmethod
    def _replay(
        ingest: Ingest, record: tuple[Any, ...], replaced: set[str],
        committed: set[tuple[str, float | None]],
    ) -> None:
        """Write one captured record on the driver, as the local run would have. A batch a
        retried task sent again is written once (a film's parts are each a commit of their
        own, told apart by where they start)."""
        if record[0] == "fail":
            _, facts, reason = record
            if (facts.path, None) not in committed:
                committed.add((facts.path, None))
                ingest.writer.fail(facts, reason)
            return
        batch: Encoded = record[1]
        keep = [i for i, f in enumerate(batch.facts) if (f.path, f.part_start) not in committed]
        if not keep:
            return
        committed.update((batch.facts[i].path, batch.facts[i].part_start) for i in keep)
        ingest.writer.commit(batch.only(keep), replaced)


def _worker_failure(exc: BaseException) -> str:
    """One line for a failure on the cluster, naming what a worker lacked when it says so."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:  # Ray keeps the worker's own exception as `cause` (or chains it)
        e = todo.pop()
        if e is None or any(e is s for s in seen):
            continue
        seen.append(e)
        if isinstance(e, MmsearchError):
            return f"A Ray worker failed: {' '.join(str(e).split())}"
        todo += [getattr(e, "cause", None), e.__cause__, e.__context__]
    text = " ".join(str(exc).split())
    if "ModuleNotFoundError" in text or "No module named" in text:
        missing = re.search(r"No module named '?([\w.]+)", text)
        return (f"A Ray worker cannot import {missing.group(1) if missing else 'a module'}: "
                "install mmsearch with the model's extra (e.g. 'mmsearch[offline,ray]') on "
                "every node.")
    named = re.search(r"(ModelUnavailableError|ClusterError|UnknownModelError)\W*(.+?)(?: \)|$)", text)
    if named:
        return f"A Ray worker failed: {named.group(2)[:500]}"
    last = [line for line in str(exc).splitlines() if line.strip()][-1:] or [type(exc).__name__]
    return f"Indexing on the Ray cluster failed: {last[0].strip()[:500]}"
