"""``cutout_qa``: QA features per stored cutout and band, plus the build's cutout mosaic PNG.
Thin: the work is stronglens.cutouts.reports (features in stronglens.cutouts.qa)."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.reports import cutout_qa_table, write_mosaic
    from stronglens.cutouts.settings import CutoutSettings

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    cutouts = dbt.ref("cutouts").to_arrow_table()
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    write_mosaic(cutouts, manifest, dbt.config.get("report_dir"), per_group=settings.mosaic_per_group,
                 seed=settings.seed, shape=settings.shape)
    return cutout_qa_table(cutouts, settings.shape)
