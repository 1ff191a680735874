"""The ``cutouts`` table: one row per manifest sample with where its cutout is stored and how the
fetch went. Thin: the work is stronglens.cutouts.pipeline.fetch_cutouts (resumable, atomic)."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.pipeline import FetchSettings, fetch_cutouts, neighbour_offsets

    settings = FetchSettings(
        source=dbt.config.get("cutout_source"),
        root=dbt.config.get("cutout_root"),
        seed=int(dbt.config.get("cutout_seed")),
        url_template=dbt.config.get("cutout_url_template"),
        layer=dbt.config.get("cutout_layer"),
        size=int(dbt.config.get("cutout_size")),
        pixscale=float(dbt.config.get("cutout_pixscale")),
        bands=dbt.config.get("cutout_bands"),
        concurrency=int(dbt.config.get("cutout_concurrency")),
        rate_limit_per_s=float(dbt.config.get("cutout_rate_limit_per_s")),
        max_attempts=int(dbt.config.get("cutout_max_attempts")),
        backoff_base_s=float(dbt.config.get("cutout_backoff_base_s")),
        coadd_root=dbt.config.get("cutout_coadd_root") or None,
    )
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    neighbours = None
    if settings.source == "synthetic":
        neighbours = neighbour_offsets(dbt.ref("int_cutout_neighbours").to_arrow_table())
    try:
        previous = session.sql(f"select * from {dbt.this}").to_arrow_table()
    except Exception:  # noqa: BLE001 - first build: there is no previous cutouts table
        previous = None
    return fetch_cutouts(manifest, settings, neighbours=neighbours, previous=previous)
