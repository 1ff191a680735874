"""Simulated lenses for the finder's training set: arcs injected into train-split negatives.

Why: the catalogue positives follow their hosts (theta_E from the host's brightness by
Faber-Jackson, :mod:`stronglens.cutouts.lenses`), so large Einstein radii are rare among them: on the
embedded default the median theta_E is 1.3", the 90th percentile 2.3", and 66 training positives
lie above 2.5".  A finder trained on them alone learns "a blob next to the core" and misses obvious
3" rings, and the selection function then *falls* with theta_E beyond 1.25", against every DR10
study (Herle et al. 2024; DOMAIN.md).  The usual remedy (Jacobs et al. 2019; Canameras et al. 2020,
2024) is to add simulated lenses spanning the Einstein radii the finder is meant to find.

How: each simulated lens is a QA-passed train-split negative (so no host is ever a val/test sample,
and no injection host of the selection function, which uses test-split negatives) with an arc drawn
from the versioned injection priors (:mod:`stronglens.injection.priors`, the one source of truth)
except theta_E, uniform over ``theta_e_range``, rendered by the same torch renderer
(:mod:`stronglens.injection.render`) with the host's own g/r/z PSF, and added in nanomaggies.  Arcs a
visual grader could not have seen are not lenses to train on: a draw is kept only when its arc's
matched-filter S/N against the host's sky noise reaches ``min_arc_snr`` (the catalogue positives
were selected on visible S/N >= 25 the same way).  Hosts are taken in the order of
``int_simulation_hosts_selected`` (a seeded hash), one draw each, until ``count`` are kept, so the
same inputs and settings give the same lenses.

What it changes downstream, and why that is stated: a finder trained on injections and scored on
injections (the selection function) is flattered where the two share their simplifications; the
realism probe (``realism_probe``) measures exactly that gap, and the finder's metrics
(``finder_metrics``) stay measured on catalogue lenses only (simulated lenses are never in val/test).

Files: ``<cutout root>/simulated/<key>/<sample_id>.npz`` in the cutout store's format, where ``key``
hashes the settings, the priors and the hosts' files, so a build with other settings writes a new
folder and earlier builds' lenses stay readable.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace

import numpy as np
import pyarrow as pa
import torch

from stronglens.cutouts.store import (
    CutoutFileError,
    CutoutMeta,
    encode_cutout,
    read_bytes,
    read_cutout,
    resolve_uri,
    write_cutout,
)
from stronglens.injection.hosts import pixel_noise_sigma
from stronglens.injection.priors import Priors, load_priors
from stronglens.injection.render import RenderSettings, arc_truth, paste, render_arcs
from stronglens.injection.sampling import draw_arc_params

#: Host columns :func:`simulate_lenses` reads (``int_simulation_hosts_selected``).
HOST_COLUMNS = (
    "sample_id",
    "galaxy_id",
    "cutout_path",
    "cutout_sha256",
    "psfsize_g",
    "psfsize_r",
    "psfsize_z",
    "psfdepth_r",
)
#: Folder of the simulated lenses under the cutout root.
STORE_FOLDER = "simulated"

SIMULATED_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string()),
        pa.field("host_sample_id", pa.string()),
        pa.field("galaxy_id", pa.int64()),
        pa.field("split", pa.string()),
        pa.field("label", pa.int32()),
        pa.field("target", pa.float64()),
        pa.field("sample_weight", pa.float64()),
        pa.field("cutout_path", pa.string()),
        pa.field("cutout_sha256", pa.string()),
        pa.field("simulation_key", pa.string()),
        pa.field("theta_e_arcsec", pa.float64()),
        pa.field("lens_q", pa.float64()),
        pa.field("lens_phi", pa.float64()),
        pa.field("shear_g1", pa.float64()),
        pa.field("shear_g2", pa.float64()),
        pa.field("src_mag_r", pa.float64()),
        pa.field("src_g_minus_r", pa.float64()),
        pa.field("src_r_minus_z", pa.float64()),
        pa.field("src_r_e_arcsec", pa.float64()),
        pa.field("src_sersic_n", pa.float64()),
        pa.field("beta_over_theta_e", pa.float64()),
        pa.field("magnification", pa.float64()),
        pa.field("lensed_mag_r", pa.float64()),
        pa.field("arc_snr", pa.float64()),
        pa.field("psf_fwhm_r", pa.float64()),
    ]
)


class SimulationError(ValueError):
    """The hosts or settings cannot give simulated lenses; the message says which and what to do."""


@dataclass(frozen=True)
class SimulationSettings:
    """The ``finder_simulated_*`` vars (and the injection priors file they share)."""

    count: int = 1500
    theta_e_range: tuple[float, float] = (0.5, 3.5)
    min_arc_snr: float = 20.0
    weight: float = 0.5
    seed: int = 7
    priors_file: str | None = None
    batch_size: int = 256
    render: RenderSettings = field(default_factory=RenderSettings)

    def __post_init__(self) -> None:
        lo, hi = self.theta_e_range
        if self.count < 0 or not 0 < lo <= hi or self.min_arc_snr < 0 or not self.weight > 0:
            raise SimulationError(
                f"invalid simulated-lens settings {self}: need count >= 0, 0 < theta_e low <= high, "
                "min_arc_snr >= 0 and weight > 0 (dbt vars finder_simulated_*)"
            )


def simulation_key(settings: SimulationSettings, hosts: pa.Table, priors: Priors) -> str:
    """12 hex digits over everything that decides the pixels: settings, priors and host files."""
    spec = asdict(replace(settings, batch_size=0))
    spec["priors"] = priors.to_dict()
    spec["priors_file"] = None
    spec["hosts"] = [
        f"{s}:{h}"
        for s, h in zip(
            hosts.column("sample_id").to_pylist(), hosts.column("cutout_sha256").to_pylist(), strict=True
        )
    ]
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _check_hosts(hosts: pa.Table) -> None:
    missing = [c for c in HOST_COLUMNS if c not in hosts.column_names]
    if missing:
        raise SimulationError(
            f"simulation hosts lack columns {missing}; rebuild int_simulation_hosts_selected"
        )
    for name in ("psfsize_g", "psfsize_r", "psfsize_z", "psfdepth_r"):
        values = hosts.column(name).to_numpy(zero_copy_only=False).astype(np.float64)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            ids = hosts.column("sample_id").take(pa.array(bad[:5])).to_pylist()
            raise SimulationError(
                f"simulation hosts {ids}{' ...' if bad.size > 5 else ''} have {name} <= 0 or null; "
                "int_simulation_hosts_selected should drop them -- check the sweeps' PSF columns"
            )


def _write_if_changed(uri: str, image: np.ndarray, meta: CutoutMeta) -> str:
    """Write one lens file unless the store holds these exact bytes; return their sha256."""
    data = encode_cutout(image, meta)
    digest = hashlib.sha256(data).hexdigest()
    try:
        if hashlib.sha256(read_bytes(uri)).hexdigest() == digest:
            return digest
    except (CutoutFileError, OSError):  # not written yet (or unreadable): write it
        pass
    return write_cutout(uri, image, meta).sha256


def simulate_lenses(
    hosts: pa.Table,
    settings: SimulationSettings,
    cutout_root: str | None,
    progress: Callable[[str], None] = print,
    threads: int = 8,
) -> pa.Table:
    """Render, keep (arc S/N) and store up to ``settings.count`` simulated lenses, one per host in
    the hosts' order; one :data:`SIMULATED_SCHEMA` row each."""
    if settings.count == 0 or hosts.num_rows == 0:
        return SIMULATED_SCHEMA.empty_table()
    _check_hosts(hosts)
    priors = load_priors(settings.priors_file)
    key = simulation_key(settings, hosts, priors)
    col = {c: hosts.column(c).to_numpy(zero_copy_only=False) for c in HOST_COLUMNS}
    psf = np.stack([col[f"psfsize_{b}"].astype(np.float64) for b in "grz"], axis=1)
    noise_r = pixel_noise_sigma(psf[:, 1], col["psfdepth_r"].astype(np.float64))
    rng = np.random.Generator(np.random.PCG64([settings.seed, 0]))
    theta_e = rng.uniform(*settings.theta_e_range, hosts.num_rows)
    params, extra = draw_arc_params(theta_e, priors, settings.seed)

    kept_rows: list[int] = []
    truth_kept: dict[str, list[float]] = {"magnification": [], "lensed_mag_r": [], "arc_snr": []}
    sample_ids: list[str] = []
    paths: list[str] = []
    digests: list[str] = []
    pool = ThreadPoolExecutor(max_workers=max(1, threads))
    try:
        for start in range(0, hosts.num_rows, settings.batch_size):
            stop = min(start + settings.batch_size, hosts.num_rows)
            batch = params.take(slice(start, stop))
            rendered = render_arcs(batch, psf[start:stop], settings.render)
            truth = arc_truth(rendered, batch, noise_r[start:stop], 0.5, settings.render.pixel_scale)
            keep = np.flatnonzero(truth["arc_snr"] >= settings.min_arc_snr)
            keep = keep[: settings.count - len(kept_rows)]
            if keep.size == 0:
                continue
            rows = start + keep
            uris = [resolve_uri(str(col["cutout_path"][r]), cutout_root) for r in rows]
            read = list(pool.map(read_cutout, uris))
            images = paste(
                torch.as_tensor(np.stack([image for image, _ in read])),
                rendered.stamps[torch.as_tensor(keep)],
                rendered.half,
            ).numpy()
            ids = [f"sim-{col['sample_id'][r]}" for r in rows]
            names = [f"{STORE_FOLDER}/{key}/{sample_id}.npz" for sample_id in ids]
            metas = [replace(meta, cutout_url=f"simulated:{key}:{meta.cutout_url}") for _, meta in read]
            uris_out = [resolve_uri(name, cutout_root) for name in names]
            digests += list(pool.map(_write_if_changed, uris_out, list(images), metas))
            sample_ids += ids
            paths += names
            kept_rows += rows.tolist()
            for name in truth_kept:
                truth_kept[name] += truth[name][keep].tolist()
            if len(kept_rows) >= settings.count:
                break
    finally:
        pool.shutdown()
    if len(kept_rows) < settings.count:
        progress(
            f"simulated lenses: {len(kept_rows)} of {settings.count} asked for -- only that many of the "
            f"{hosts.num_rows} train-split negatives gave an arc S/N >= {settings.min_arc_snr:g}"
        )
    idx = np.asarray(kept_rows, dtype=np.int64)
    n = idx.size
    return pa.table(
        {
            "sample_id": sample_ids,
            "host_sample_id": col["sample_id"][idx].astype(str).tolist(),
            "galaxy_id": pa.array(col["galaxy_id"][idx], pa.int64()),
            "split": ["train"] * n,
            "label": pa.array(np.ones(n, np.int32)),
            "target": np.ones(n),
            "sample_weight": np.full(n, settings.weight),
            "cutout_path": paths,
            "cutout_sha256": digests,
            "simulation_key": [key] * n,
            "theta_e_arcsec": params.theta_e[idx],
            "lens_q": params.lens_q[idx],
            "lens_phi": params.lens_phi[idx],
            "shear_g1": params.shear_g1[idx],
            "shear_g2": params.shear_g2[idx],
            "src_mag_r": extra["src_mag_r"][idx],
            "src_g_minus_r": extra["src_g_minus_r"][idx],
            "src_r_minus_z": extra["src_r_minus_z"][idx],
            "src_r_e_arcsec": params.src_r_e[idx],
            "src_sersic_n": params.src_n[idx],
            "beta_over_theta_e": extra["beta_over_theta_e"][idx],
            "magnification": np.asarray(truth_kept["magnification"], np.float64),
            "lensed_mag_r": np.asarray(truth_kept["lensed_mag_r"], np.float64),
            "arc_snr": np.asarray(truth_kept["arc_snr"], np.float64),
            "psf_fwhm_r": psf[idx, 1],
        },
        schema=SIMULATED_SCHEMA,
    )


def settings_from_json(text: str) -> tuple[SimulationSettings, str]:
    """``(settings, cutout root)`` from the ``simulation_settings`` config the model's YAML renders
    from the vars; a missing key is an error naming the var."""
    raw = json.loads(text)
    try:
        settings = SimulationSettings(
            count=int(raw["finder_simulated_lenses"]),
            theta_e_range=(
                float(raw["finder_simulated_theta_e_arcsec"][0]),
                float(raw["finder_simulated_theta_e_arcsec"][1]),
            ),
            min_arc_snr=float(raw["finder_simulated_min_arc_snr"]),
            weight=float(raw["finder_weight_simulated"]),
            seed=int(raw["finder_simulated_seed"]),
            priors_file=raw["injection_priors_file"] or None,
            render=RenderSettings(
                supersample=int(raw["injection_supersample"]),
                supersample_threshold=float(raw["injection_supersample_threshold"]),
            ),
        )
        return settings, str(raw["cutout_root"])
    except KeyError as exc:
        raise SimulationError(
            f"simulation_settings misses {exc}: add the var to dbt_project.yml (section 'training')"
        ) from exc
