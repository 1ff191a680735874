"""Training runs end to end on a tiny learnable cutout set: reuse, retrain, resume after an
interruption (same result as uninterrupted), the Finder contract, the ensemble, the test split never
seen, and bad input (one class, empty split, NaN cutouts, a checkpoint of another architecture)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import torch

from stronglens.cutouts.store import read_cutout
from stronglens.training.data import TrainingDataError
from stronglens.training.finder import Finder, FinderCheckpointError
from stronglens.training.train import RunOptions, TrainConfig, train_finders
from tests.training_data import write_store

SPLITS = {"train": (8, 24), "val": (4, 12), "test": (4, 12)}


def config(**overrides: object) -> TrainConfig:
    return TrainConfig(
        **{"crop": 32, "shift": 2, "max_epochs": 4, "patience": 4, "batch_size": 8, "lr": 0.005, **overrides}
    )


def options(root: Path, **overrides: object) -> RunOptions:
    return RunOptions(
        **{"root": root, "device": "cpu", "threads": 1, "progress": lambda _: None, **overrides}
    )


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> pa.Table:
    return write_store(tmp_path_factory.mktemp("store"), SPLITS)


@pytest.fixture(scope="module")
def trained(manifest: pa.Table, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("runs")
    (run,) = train_finders(manifest, [config()], options(root))
    return root, run


def test_run_files_and_summary(trained: tuple[Path, dict]) -> None:
    root, run = trained
    run_dir = Path(run["checkpoint_path"]).parent
    assert run_dir.parent == root and run["run_id"].startswith("shielded_resnet-")
    assert {p.name for p in run_dir.iterdir()} >= {
        "last.pt",
        "model.pt",
        "scores.parquet",
        "embeddings.npz",
        "run.json",
    }
    assert run["epochs_run"] == 4 and run["n_params"] == 192_145 and not run["reused"]
    assert run["best_val_auc"] > 0.9  # a ring is easy
    assert (run["n_train"], run["n_val"], run["n_test"]) == (32, 16, 16)


def test_test_split_is_never_trained_on(trained: tuple[Path, dict], manifest: pa.Table) -> None:
    seen = set(
        pq.read_table(Path(trained[1]["checkpoint_path"]).parent / "train_samples.parquet")[
            "sample_id"
        ].to_pylist()
    )
    split = dict(zip(manifest["sample_id"].to_pylist(), manifest["split"].to_pylist(), strict=True))
    assert seen and {split[s] for s in seen} == {"train"}
    assert len(seen) == sum(s == "train" for s in split.values())


def test_finder_scores_raw_images_like_training(trained: tuple[Path, dict], manifest: pa.Table) -> None:
    finder = Finder.load(trained[1]["checkpoint_path"], device="cpu")
    images = np.stack([read_cutout(p)[0] for p in manifest["cutout_path"].to_pylist()[:20]])
    scores, embeddings = finder.score(images, batch_size=7)
    stored = pq.read_table(trained[1]["scores_path"])["score"].to_numpy()[:20]
    # training caches windows as float16: scores agree to its precision
    np.testing.assert_allclose(scores, stored, atol=3e-4)
    assert embeddings.shape == (20, 64) and ((scores > 0) & (scores < 1)).all()
    npz = np.load(trained[1]["embedding_path"])
    np.testing.assert_allclose(npz["embedding"][:20], embeddings, rtol=1e-2, atol=1e-2)


def test_unchanged_inputs_reuse_and_retrain_keeps_the_old_run(
    trained: tuple[Path, dict], manifest: pa.Table
) -> None:
    root, first = trained
    model = Path(first["checkpoint_path"])
    before = model.stat().st_mtime_ns
    (again,) = train_finders(manifest, [config()], options(root))
    assert again["reused"] and again["run_id"] == first["run_id"] and model.stat().st_mtime_ns == before
    (fresh,) = train_finders(manifest, [config()], options(root, retrain=True))
    assert fresh["run_id"] == first["run_id"] + "-r2" and not fresh["reused"]
    assert model.stat().st_mtime_ns == before  # the earlier run is untouched
    # same seed, same data: the retrained model scores like the first one
    a = pq.read_table(first["scores_path"])["score"].to_numpy()
    b = pq.read_table(fresh["scores_path"])["score"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_interrupted_run_resumes_to_the_same_model(
    trained: tuple[Path, dict], manifest: pa.Table, tmp_path: Path
) -> None:
    class InterruptError(Exception):
        pass

    def stop_after_first_epoch(message: str) -> None:
        if "epoch 0" in message:
            raise InterruptError

    with pytest.raises(InterruptError):
        train_finders(manifest, [config()], options(tmp_path, progress=stop_after_first_epoch))
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "last.pt").is_file() and not (run_dir / "run.json").exists()
    messages: list[str] = []
    (resumed,) = train_finders(manifest, [config()], options(tmp_path, progress=messages.append))
    assert resumed["resumed_from_epoch"] == 1 and any("resuming" in m for m in messages)
    assert resumed["run_id"] == trained[1]["run_id"]
    a = pq.read_table(trained[1]["scores_path"])["score"].to_numpy()
    b = pq.read_table(resumed["scores_path"])["score"].to_numpy()
    np.testing.assert_allclose(a, b, atol=1e-4)


def test_checkpoint_of_another_architecture_is_refused_and_kept(manifest: pa.Table, tmp_path: Path) -> None:
    class InterruptError(Exception):
        pass

    def stop(message: str) -> None:
        if "epoch 0" in message:
            raise InterruptError

    with pytest.raises(InterruptError):
        train_finders(manifest, [config(arch="efficient_net")], options(tmp_path, progress=stop))
    (other,) = tmp_path.iterdir()
    with pytest.raises(InterruptError):
        train_finders(manifest, [config()], options(tmp_path, progress=stop))
    mine = next(p for p in tmp_path.iterdir() if p.name.startswith("shielded_resnet"))
    shutil.copy(other / "last.pt", mine / "last.pt")
    with pytest.raises(FinderCheckpointError, match=re.escape(str(mine / "last.pt"))) as err:
        train_finders(manifest, [config()], options(tmp_path))
    assert "efficient_net" in str(err.value)
    assert (mine / "last.pt").is_file() and (other / "last.pt").is_file()
    # the Finder refuses weights that do not fit the architecture its file names
    payload = torch.load(other / "model.pt", weights_only=True)
    payload["arch"] = "shielded_resnet"
    torch.save(payload, tmp_path / "mislabelled.pt")
    with pytest.raises(
        FinderCheckpointError, match=r"mislabelled\.pt.*do not fit architecture 'shielded_resnet'"
    ):
        Finder.load(tmp_path / "mislabelled.pt", device="cpu")


def test_ensemble_of_both_architectures(manifest: pa.Table, tmp_path: Path) -> None:
    configs = [config(max_epochs=1), config(arch="efficient_net", max_epochs=1)]
    runs = train_finders(manifest, configs, options(tmp_path))
    assert [r["arch"] for r in runs] == ["shielded_resnet", "efficient_net", "ensemble_mean"]
    mean = np.mean([pq.read_table(r["scores_path"])["score"].to_numpy() for r in runs[:2]], axis=0)
    np.testing.assert_allclose(pq.read_table(runs[2]["scores_path"])["score"].to_numpy(), mean, atol=1e-6)
    finder = Finder.load(runs[2]["checkpoint_path"], device="cpu")
    images = np.stack([read_cutout(p)[0] for p in manifest["cutout_path"].to_pylist()[:5]])
    scores, embeddings = finder.score(images)
    np.testing.assert_allclose(scores, mean[:5], atol=3e-4)
    assert embeddings.shape == (5, 64 + 128)
    assert json.loads((Path(runs[2]["checkpoint_path"]).parent / "run.json").read_text())["members"] == [
        runs[0]["run_id"],
        runs[1]["run_id"],
    ]


def test_one_class_and_empty_split_are_refused(manifest: pa.Table, tmp_path: Path) -> None:
    negatives = manifest.filter(pc.equal(manifest["label"], 0))
    with pytest.raises(TrainingDataError, match=r"train split .* 0 positives and 24 negatives"):
        train_finders(negatives, [config()], options(tmp_path))
    no_val = manifest.filter(pc.not_equal(manifest["split"], "val"))
    with pytest.raises(TrainingDataError, match=r"val split .* 0 positives and 0 negatives"):
        train_finders(no_val, [config()], options(tmp_path))
    assert not any(tmp_path.iterdir())


def test_nan_cutout_is_named(manifest: pa.Table, tmp_path: Path) -> None:
    from stronglens.cutouts.store import CutoutMeta, write_cutout

    bad_path = manifest["cutout_path"][5].as_py()
    image, _ = read_cutout(bad_path)
    image[:40] = np.nan
    copy = tmp_path / "nan.npz"
    write_cutout(
        str(copy), image, CutoutMeta(1, 1.0, 1.0, "SER", 3, 1.2, 5.0, "x", "2026-12-02T00:00:00+00:00")
    )
    paths = manifest["cutout_path"].to_pylist()
    paths[5] = str(copy)
    doctored = manifest.set_column(
        manifest.schema.get_field_index("cutout_path"), "cutout_path", pa.array(paths)
    )
    named = re.escape(f"non-finite pixels: {manifest['sample_id'][5].as_py()}")
    with pytest.raises(TrainingDataError, match=named):
        train_finders(doctored, [config()], options(tmp_path / "runs"))


def test_epochs_repeat_every_positive_and_draw_the_negatives() -> None:
    """positive_repeats puts each train positive that many times into an epoch, beside
    epoch_negatives distinct negatives; val/test samples never enter, and epochs differ in order."""
    from stronglens.training.train import TrainingSet, epoch_indices

    split = np.array(["train"] * 30 + ["val"] * 5 + ["test"] * 5)
    label = np.array(([1] * 6 + [0] * 24) + [1, 0, 0, 0, 0] * 2)
    ids = [str(i) for i in range(40)]
    data = TrainingSet(ids, [""] * 40, split, label, label * 1.0, np.ones(40), "h", np.zeros(40, bool))
    cfg = config(positive_repeats=3, epoch_negatives=10)
    first, second = epoch_indices(data, cfg, 0), epoch_indices(data, cfg, 1)
    for order in (first, second):
        counts = np.bincount(order, minlength=40)
        assert (counts[:6] == 3).all() and counts[30:].sum() == 0
        assert (counts[6:30] <= 1).all() and counts[6:30].sum() == 10
    assert not np.array_equal(first, second)
    np.testing.assert_array_equal(first, epoch_indices(data, cfg, 0))
    with pytest.raises(ValueError, match="invalid training settings"):
        config(positive_repeats=0)
