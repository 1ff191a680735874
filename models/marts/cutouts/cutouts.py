"""The ``cutouts`` table: one row per manifest sample with where its cutout is stored and how the
fetch went. Thin: the work is stronglens.cutouts.pipeline.fetch_cutouts (resumable, atomic)."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.pipeline import fetch_cutouts, neighbour_offsets
    from stronglens.cutouts.settings import CutoutSettings
    from stronglens.cutouts.sources import SOURCES

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    neighbours = None
    if SOURCES[settings.source].needs_neighbours:
        neighbours = neighbour_offsets(dbt.ref("int_cutout_neighbours").to_arrow_table())
    try:
        previous = session.sql(f"select * from {dbt.this}").to_arrow_table()
    except Exception:
        previous = None
    return fetch_cutouts(manifest, settings, neighbours=neighbours, previous=previous)
