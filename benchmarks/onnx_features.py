"""Benchmark: backbone features on ONNX Runtime (semret's path) against plain ONNX Runtime and torch.

The model is EfficientNet-Lite0 with its shipped ImageNet weights (offline); the images are
Fashion-MNIST's (28 x 28 grey, from ``--data-dir``, else the shipped sample), resized by the
backbone's preprocessing. At each input size (``--sizes``), side by side in one run, on the same
``--images`` images in the same batches (``--batch-size``), the methods taking turns in each of
``--repeats`` runs (the best run counts: the cores are shared, and interference only slows a run
down), after one untimed warm-up batch each:

- semret onnx: `semret.vision.features.extract_features(engine="onnx")`, uint8 images in,
  preprocessing included, on the exported file in the run's cache (`semret.vision.onnx_runtime`);
- plain ORT: ``onnxruntime.InferenceSession(file).run`` on the same file, with ORT's default options
  and with semret's (intra-op threads = available CPUs, every graph optimisation), on batches
  preprocessed beforehand (the strict ratio: semret's preprocessing against none);
- plain ORT + preprocessing: the loop a user of plain ORT writes, the backbone's preprocessing
  then ``run`` (semret's options), batch by batch (the like-for-like ratio);
- torch: `extract_features(engine="torch")`, the path before ONNX Runtime.

Each method's features are compared with torch's (max abs difference). The target is semret onnx
>= 0.9x plain ORT's images/s; both ratios are printed, the verdict on the like-for-like one.
``--subset N`` then times one pass over the first N train images at 224 px with each engine (wall
time, images/s), and ``--full onnx,torch`` the whole 70,000-image Fashion-MNIST (train + test)
pass at 224 px with the engines named.

    uv run python benchmarks/onnx_features.py --data-dir ../shared/data/fashion-mnist --subset 5000 --full onnx
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import onnxruntime
import torch
from common import machine_line

from semret.app.demo import sample_dir
from semret.vision.backbones import Backbone, make_backbone
from semret.vision.datasets import load_dataset
from semret.vision.features import extract_features
from semret.vision.onnx_runtime import available_cpus, onnx_features

TARGET_WRAPPER_RATIO = 0.9  # semret's ORT path at least this fraction of plain ORT's images/s
BACKBONE = "efficientnet-lite0"


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Method:
    """One way of computing the features and its timed runs."""

    name: str
    run: Callable[[], npt.NDArray[np.float32]]
    times: list[float] = field(default_factory=list)
    features: npt.NDArray[np.float32] | None = None

    @property
    def best_s(self) -> float:
        return min(self.times)

    @property
    def median_s(self) -> float:
        return float(np.median(self.times))


def images_of(data_dir: str | None, split: str) -> npt.NDArray[np.uint8]:
    return load_dataset("fashion-mnist", split, data_dir or sample_dir()).images


def side_by_side(
    size: int, images: npt.NDArray[np.uint8], batch_size: int, repeats: int, cache: Path
) -> tuple[list[str], tuple[float, float]]:
    """The table lines of one input size, and semret onnx's images/s over the faster plain ORT's
    (on preprocessed batches) and over plain ORT's with the same preprocessing."""
    backbone = make_backbone(BACKBONE, "imagenet", size)
    started = time.perf_counter()
    network = onnx_features(backbone, cache)
    how = "exported" if network.exported else "cached"
    log(f"{size} px: {network.path.name} ({how}, {network.exporter}) in {time.perf_counter() - started:.1f} s")
    plain = onnxruntime.InferenceSession(str(network.path), providers=["CPUExecutionProvider"])
    options = onnxruntime.SessionOptions()  # semret's: threads = available CPUs, every optimisation
    options.intra_op_num_threads = available_cpus()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    tuned = onnxruntime.InferenceSession(str(network.path), options, providers=["CPUExecutionProvider"])
    name_in, name_out = plain.get_inputs()[0].name, plain.get_outputs()[0].name
    batches = [
        np.ascontiguousarray(backbone.preprocess(images[start : start + batch_size]).numpy())
        for start in range(0, len(images), batch_size)
    ]

    def plain_run(session: onnxruntime.InferenceSession) -> Callable[[], npt.NDArray[np.float32]]:
        return lambda: np.concatenate([session.run([name_out], {name_in: batch})[0] for batch in batches])

    def plain_with_preprocessing() -> npt.NDArray[np.float32]:
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = np.ascontiguousarray(backbone.preprocess(images[start : start + batch_size]).numpy())
            outputs.append(tuned.run([name_out], {name_in: batch})[0])
        return np.concatenate(outputs)

    methods = [
        Method("semret onnx", lambda: extract_features(backbone, images, batch_size, engine="onnx", cache_dir=cache)),
        Method("plain ORT", plain_run(plain)),
        Method("plain ORT, semret's options", plain_run(tuned)),
        Method("plain ORT + preprocessing", plain_with_preprocessing),
        Method("torch", lambda: extract_features(backbone, images, batch_size, engine="torch")),
    ]
    warm = images[:batch_size]
    extract_features(backbone, warm, batch_size, engine="onnx", cache_dir=cache)
    plain.run([name_out], {name_in: batches[0]})
    tuned.run([name_out], {name_in: batches[0]})
    extract_features(backbone, warm, batch_size, engine="torch")
    for repeat in range(repeats):
        for method in methods[repeat % len(methods) :] + methods[: repeat % len(methods)]:  # turns rotate
            start = time.perf_counter()
            method.features = method.run()
            method.times.append(time.perf_counter() - start)
        log(f"  {size} px, repeat {repeat + 1}/{repeats}: " + ", ".join(f"{m.times[-1]:.2f} s" for m in methods))
    reference = methods[-1].features
    assert reference is not None
    by_name = {m.name: m for m in methods}
    best_plain = min(m.best_s for m in methods if m.name in ("plain ORT", "plain ORT, semret's options"))
    lines = []
    for method in methods:
        assert method.features is not None
        rate = len(images) / method.best_s
        difference = float(np.max(np.abs(method.features - reference)))
        versus = best_plain / method.best_s
        spread = f"{min(method.times):.2f}-{max(method.times):.2f}"
        lines.append(
            f"| {size} | {method.name} | {rate:,.1f} | {method.median_s:.2f} ({spread}) | {versus:.2f}x | "
            f"{by_name['torch'].best_s / method.best_s:.2f}x | {difference:.2g} |"
        )
    semret_s = by_name["semret onnx"].best_s
    return lines, (best_plain / semret_s, by_name["plain ORT + preprocessing"].best_s / semret_s)


def one_pass(backbone: Backbone, images: npt.NDArray[np.uint8], engine: str, batch_size: int, cache: Path) -> float:
    """Seconds for one `extract_features` pass over ``images`` (the ONNX file already exported)."""
    step = max(1, len(images) // 10)

    def progress(_: str, done: int, total: int) -> None:
        if done % step < batch_size or done == total:
            log(f"    {engine}: {done:,}/{total:,} after {time.perf_counter() - start:.0f} s")

    start = time.perf_counter()
    extract_features(backbone, images, batch_size, progress, engine=engine, cache_dir=cache)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help="Fashion-MNIST's IDX files (default: the shipped 1,000-image sample)")
    parser.add_argument(
        "--sizes", default="224,112", help="input sizes, comma-separated (default 224,112; empty: none)"
    )
    parser.add_argument("--images", type=int, default=512, help="images per side-by-side run (default 512)")
    parser.add_argument("--batch-size", type=int, default=64, help="batch size (default 64)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per method, the best counts (default 3)")
    parser.add_argument("--subset", type=int, default=0, help="one pass over this many train images per engine")
    parser.add_argument("--full", default="", help="engines for the 70,000-image pass at 224 px, e.g. onnx,torch")
    args = parser.parse_args()
    load = os.getloadavg() if hasattr(os, "getloadavg") else (0.0, 0.0, 0.0)
    run_start = time.perf_counter()
    cache = Path(tempfile.mkdtemp(prefix="semret-bench-onnx-"))  # the exported files; removed at the end
    atexit.register(shutil.rmtree, cache, ignore_errors=True)
    test = images_of(args.data_dir, "test")[: args.images]

    lines: list[str] = []
    ratios: dict[int, tuple[float, float]] = {}
    for size in (int(s) for s in args.sizes.split(",") if s):
        size_lines, ratios[size] = side_by_side(size, test, args.batch_size, args.repeats, cache)
        lines += size_lines

    passes: list[str] = []
    backbone = make_backbone(BACKBONE, "imagenet", 224)
    onnx_features(backbone, cache)  # exported before the passes are timed
    if args.subset:
        subset = images_of(args.data_dir, "train")[: args.subset]
        for engine in ("onnx", "torch"):
            log(f"subset pass: {len(subset):,} images, {engine}")
            seconds = one_pass(backbone, subset, engine, args.batch_size, cache)
            passes.append(f"| {len(subset):,} train images | {engine} | {seconds:.0f} | {len(subset) / seconds:,.1f} |")
    if args.full:
        everything = np.concatenate([images_of(args.data_dir, "train"), images_of(args.data_dir, "test")])
        for engine in args.full.split(","):
            log(f"full pass: {len(everything):,} images, {engine}")
            seconds = one_pass(backbone, everything, engine, args.batch_size, cache)
            passes.append(
                f"| {len(everything):,} (train + test) | {engine} | {seconds:.0f} | {len(everything) / seconds:,.1f} |"
            )
    wall_s = time.perf_counter() - run_start

    print(machine_line())
    print(
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__} "
        f"(semret: {available_cpus()} intra-op threads; plain: ORT's defaults); {BACKBONE} ImageNet weights; "
        f"{len(test):,} Fashion-MNIST test images, batches of {args.batch_size}; best of {args.repeats} runs; "
        f"load average before the run {load[0]:.2f}, {load[1]:.2f}, {load[2]:.2f}; whole run {wall_s:.0f} s\n"
    )
    print(
        "| px | method | images/s (best run) | median s (min-max) | vs best plain | vs torch | max abs diff vs torch |"
    )
    print("|---:|---|---:|---|---:|---:|---:|")
    print("\n".join(lines))
    if passes:
        print("\n| pass at 224 px | engine | wall s | images/s |")
        print("|---|---|---:|---:|")
        print("\n".join(passes))
    verdicts = "; ".join(
        f"{size} px: {strict:.2f}x run only, {alike:.2f}x with preprocessing "
        + ("yes" if alike >= TARGET_WRAPPER_RATIO else "NO")
        for size, (strict, alike) in ratios.items()
    )
    print(f"\nTarget: semret onnx >= {TARGET_WRAPPER_RATIO}x plain ORT's images/s: {verdicts}")


if __name__ == "__main__":
    main()
