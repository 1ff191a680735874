"""QA of stored cutouts, the shortcut audit and their PNG reports, as the dbt models use them.

Kept apart from the pure feature/audit code (``qa.py``, ``audit.py``) because this is where the
warehouse's tables meet the files: which cutouts to load, how samples are labelled and grouped,
and where each build's pictures go.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from stronglens.cutouts.audit import N1_SCOPE, shortcut_audit
from stronglens.cutouts.plots import audit_png, gallery_png, mosaic_png
from stronglens.cutouts.qa import BANDS, SIGNAL_FEATURES, qa_features
from stronglens.cutouts.store import read_cutout, resolve_uri

#: Label columns the audit groups by, from the manifest.
LABEL_COLUMNS = ("sample_id", "label", "split", "n2_category")
#: Columns (and dtypes) of the shortcut_audit table, also when there is nothing to audit.
AUDIT_COLUMNS = {
    "feature": "string",
    "band": "string",
    "scope_kind": "string",
    "scope": "string",
    "n_pos": "int64",
    "n_neg": "int64",
    "auc": "float64",
    "auc_lo": "float64",
    "auc_hi": "float64",
    "flagged": "bool",
    "is_signal": "bool",
    "note": "string",
    "arc_driven": "boolean",
}


def load_cutouts(
    paths: list[str], shape: tuple[int, int, int], root: str | None, threads: int = 8
) -> np.ndarray:
    """Read stored cutouts of ``shape`` (the settings' shape; threads: S3 reads are latency bound)
    into an ``(N, *shape)`` array; ``paths`` as the ``cutouts`` table has them, relative to ``root``."""
    out = np.empty((len(paths), *shape), dtype=np.float32)

    def read(i: int) -> None:
        out[i] = read_cutout(resolve_uri(paths[i], root), expected_shape=shape)[0]

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(read, range(len(paths))))
    return out


def cutout_qa_table(
    cutouts: pa.Table, shape: tuple[int, int, int], root: str | None, batch: int = 2048
) -> pa.Table:
    """``qa_features`` for every stored (status ok) cutout, read in batches to bound memory."""
    ok = cutouts.filter(pc.equal(cutouts.column("status"), "ok"))
    parts = []
    ids = ok.column("sample_id").to_pylist()
    paths = ok.column("path").to_pylist()
    for start in range(0, len(ids), batch):
        images = load_cutouts(paths[start : start + batch], shape, root)
        parts.append(qa_features(images, ids=ids[start : start + batch]))
    if not parts:
        empty = qa_features(np.zeros((0, *shape), dtype=np.float32), ids=[])
        return empty.set_column(0, "sample_id", pa.array([], pa.string()))
    return pa.concat_tables(parts)


def _labelled(qa: pa.Table, manifest: pa.Table) -> pd.DataFrame:
    labels = manifest.select(list(LABEL_COLUMNS)).to_pandas()
    labels["label"] = (labels["label"] == "positive").astype(int)
    features = qa.to_pandas().astype({"sample_id": str})
    labelled = features.merge(labels.astype({"sample_id": str}), on="sample_id", how="inner")
    # the bootstrap draws weights by row position, so the rows go in a fixed order: a table read back
    # from the warehouse comes in scan order, which varies between builds and moved intervals (and a
    # flag at the threshold) between two builds of the same cutouts
    return labelled.sort_values(["sample_id", "band"], kind="stable", ignore_index=True)


def audit_table(
    qa: pa.Table,
    manifest: pa.Table,
    n_boot: int,
    seed: int,
    flag_threshold: float,
    arc_free_qa: pa.Table | None = None,
) -> pd.DataFrame:
    """The shortcut audit of the usable cutouts' QA features (label 1 = positive).

    ``arc_free_qa``: QA features of the positives' *arc-free twins* (the same cutouts rendered without
    the lensed source: :func:`stronglens.cutouts.render.arc_free_qa`). With it the audit adds
    scope_kind ``arc_free`` rows (twins vs all negatives, and vs N1), which separate the two reasons
    a feature can tell lenses apart: the arc light itself (the signal: the twins do not differ) and
    the host, the neighbours or the pipeline (a shortcut: the twins differ too). ``arc_driven`` marks a
    flag the twins do not reproduce (it stays flagged: a CNN can still use that one number, but what
    it would learn is the arc light); null without twins.
    """
    audit = _audit(qa, manifest, n_boot, seed, flag_threshold)
    audit["arc_driven"] = pd.array([None] * len(audit), dtype="boolean")
    if arc_free_qa is None or audit.empty:
        return audit
    twins = set(arc_free_qa.column("sample_id").to_pylist())
    negatives_qa = qa.filter(pc.invert(pc.is_in(qa.column("sample_id"), pa.array(list(twins), pa.string()))))
    arc_free = _audit(
        pa.concat_tables([negatives_qa, arc_free_qa.select(qa.column_names).cast(qa.schema)]),
        manifest,
        n_boot,
        seed,
        flag_threshold,
        split_column=None,
    )
    arc_free = arc_free[arc_free["scope"].isin(["all", N1_SCOPE])].assign(scope_kind="arc_free")
    arc_free["arc_driven"] = pd.array([None] * len(arc_free), dtype="boolean")
    twin_flag = arc_free.set_index(["feature", "band", "scope"])["flagged"]
    twin_auc = arc_free.set_index(["feature", "band", "scope"])["auc"]
    twin_scope = np.where(audit["scope"] == N1_SCOPE, N1_SCOPE, "all")
    keys = list(zip(audit["feature"], audit["band"], twin_scope, strict=True))
    known = np.array([key in twin_flag.index for key in keys])
    reproduced = np.array([bool(twin_flag.get(key, True)) for key in keys])
    comparable = known & ((audit["scope_kind"] != "negative_class") | (audit["scope"] == N1_SCOPE)).to_numpy()
    arc_driven = audit["flagged"].to_numpy() & comparable & ~reproduced
    audit["arc_driven"] = pd.array(np.where(comparable, arc_driven, None), dtype="boolean")
    twin_text = pd.Series([f"{twin_auc.get(key, np.nan):.2f}" for key in keys], index=audit.index)
    audit["note"] = np.where(
        arc_driven,
        "ARC-DRIVEN: "
        + audit["note"].str.replace("SHORTCUT: ", "", regex=False)
        + "; the arc-free twins do not separate (AUC "
        + twin_text
        + "): the arc light, not the host",
        audit["note"],
    )
    return pd.concat([audit, arc_free], ignore_index=True)


def _audit(
    qa: pa.Table,
    manifest: pa.Table,
    n_boot: int,
    seed: int,
    flag_threshold: float,
    split_column: str | None = "split",
) -> pd.DataFrame:
    frame = _labelled(qa, manifest)
    frame = frame[frame["is_usable"]].drop(columns=["is_usable", "unusable_reason"])
    # the catalogue seeing of each band: positives observed in better or worse seeing would let a
    # CNN key on PSF size
    names = manifest.column_names
    if all(f"psfsize_{b}" in names for b in BANDS):
        psf = manifest.select(["sample_id", *(f"psfsize_{b}" for b in BANDS)]).to_pandas()
        psf = psf.melt(id_vars="sample_id", var_name="band", value_name="psf_fwhm")
        psf["band"] = psf["band"].str.removeprefix("psfsize_")
        frame = frame.merge(psf.astype({"sample_id": str}), on=["sample_id", "band"], how="left")
    if frame.empty:
        return pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in AUDIT_COLUMNS.items()})
    return shortcut_audit(
        frame,
        n_boot=n_boot,
        seed=seed,
        flag_threshold=flag_threshold,
        signal_features=SIGNAL_FEATURES,
        split_column=split_column,
    )


def write_mosaic(
    cutouts: pa.Table,
    manifest: pa.Table,
    out_dir: str,
    per_group: int,
    seed: int,
    shape: tuple[int, int, int],
    root: str | None,
) -> Path | None:
    """A mosaic of seeded random samples: positives, N1 and each N2 category, one row each."""
    ok = cutouts.filter(pc.equal(cutouts.column("status"), "ok")).select(["sample_id", "path"]).to_pandas()
    frame = ok.merge(
        manifest.select(["sample_id", "label", "n2_category", "tier"]).to_pandas(), on="sample_id"
    )
    if frame.empty:
        return None
    frame["group"] = np.where(frame["label"] == "positive", "positive", frame["n2_category"].fillna("N1"))
    rng = np.random.default_rng(seed)
    picked = pd.concat(
        [members.iloc[rng.permutation(len(members))[:per_group]] for _, members in frame.groupby("group")]
    )
    order = ["positive", "N1", *sorted(set(picked["group"]) - {"positive", "N1"})]
    titles = [
        f"{sid}" + (f" ({tier})" if isinstance(tier, str) else "")
        for sid, tier in zip(picked["sample_id"], picked["tier"], strict=True)
    ]
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return mosaic_png(
        load_cutouts(picked["path"].tolist(), shape, root),
        picked["group"].tolist(),
        Path(out_dir) / "cutout_mosaic.png",
        titles=titles,
        per_group=per_group,
        group_order=[g for g in order if g in set(picked["group"])],
    )


def write_audit_plot(audit: pd.DataFrame, out_dir: str, flag_threshold: float) -> Path | None:
    if audit.empty:
        return None
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return audit_png(audit, Path(out_dir) / "shortcut_audit.png", flag_threshold=flag_threshold)


def write_galleries(
    cutouts: pa.Table,
    manifest: pa.Table,
    lens_truth: pa.Table | None,
    out_dir: str,
    per_group: int,
    seed: int,
    shape: tuple[int, int, int],
    root: str | None,
) -> list[Path]:
    """One gallery PNG per group -- ``gallery_positive.png`` (titled with theta_E and arc S/N from
    ``lens_truth``), ``gallery_N1.png`` and ``gallery_<N2 category>.png`` -- of ``per_group``
    seeded random stored cutouts each, so a reader can see what every class looks like."""
    ok = cutouts.filter(pc.equal(cutouts.column("status"), "ok")).select(["sample_id", "path"]).to_pandas()
    frame = ok.merge(manifest.select(["sample_id", "label", "n2_category"]).to_pandas(), on="sample_id")
    if frame.empty:
        return []
    frame["group"] = np.where(frame["label"] == "positive", "positive", frame["n2_category"].fillna("N1"))
    truth = pd.DataFrame(columns=["sample_id", "theta_e_arcsec", "arc_snr"])
    if lens_truth is not None and lens_truth.num_rows:
        truth = lens_truth.select(["sample_id", "theta_e_arcsec", "arc_snr"]).to_pandas()
    frame = frame.merge(truth, on="sample_id", how="left")
    rng = np.random.default_rng(seed)
    written = []
    for group, members in sorted(frame.groupby("group"), key=lambda item: str(item[0])):
        picked = members.iloc[rng.permutation(len(members))[:per_group]]
        if group == "positive":
            titles = [
                f'{t:.2f}" S/N {s:.0f}' if np.isfinite(t) else str(sid)
                for sid, t, s in zip(picked.sample_id, picked.theta_e_arcsec.astype(float),
                                     picked.arc_snr.astype(float), strict=True)
            ]  # fmt: skip
            title = f"Positives (n={len(members)}): theta_E and arc S/N"
        else:
            titles = [str(sid)[-8:] for sid in picked.sample_id]
            title = f"{group} negatives (n={len(members)})"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(group))
        written.append(
            gallery_png(
                load_cutouts(picked["path"].tolist(), shape, root),
                titles,
                Path(out_dir) / f"gallery_{safe}.png",
                title=f"{title} (RGB = z, r, g; asinh)",
            )
        )
    return written
