"""``lens_truth``: the lens rendered into each positive's synthetic cutout (theta_E, q, shear,
source, magnification, arc S/N), keyed by sample_id, so training metrics can be broken down by it.
Empty for the real-data sources (their lenses are unknown). Thin: stronglens.cutouts.render."""


def model(dbt, session):
    dbt.config(materialized="table")
    import pyarrow as pa

    from stronglens.cutouts.pipeline import neighbour_offsets
    from stronglens.cutouts.render import RenderConfig, lens_truth
    from stronglens.cutouts.settings import CutoutSettings

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    if settings.source != "synthetic":
        manifest = manifest.slice(0, 0)
    neighbours = neighbour_offsets(dbt.ref("int_cutout_neighbours").to_arrow_table())
    config = RenderConfig(n_pix=settings.size, pixel_scale=settings.pixscale)
    table = lens_truth(manifest, neighbours, seed=settings.seed, config=config)
    return table if table.num_rows else pa.Table.from_batches([], schema=table.schema)
