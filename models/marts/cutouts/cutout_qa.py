"""``cutout_qa``: QA features per stored cutout and band, plus the build's cutout mosaic and the
gallery PNGs (one per N2 category, N1 and the positives with their theta_E).
Thin: the work is stronglens.cutouts.reports (features in stronglens.cutouts.qa)."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.reports import cutout_qa_table, write_galleries, write_mosaic
    from stronglens.cutouts.settings import CutoutSettings

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    cutouts = dbt.ref("cutouts").to_arrow_table()
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    lens_truth = dbt.ref("lens_truth").to_arrow_table()
    report_dir = dbt.config.get("report_dir")
    write_mosaic(cutouts, manifest, report_dir, per_group=settings.mosaic_per_group, seed=settings.seed,
                 shape=settings.shape, root=settings.root)  # fmt: skip
    write_galleries(cutouts, manifest, lens_truth, report_dir, per_group=settings.gallery_per_group,
                    seed=settings.seed, shape=settings.shape, root=settings.root)  # fmt: skip
    return cutout_qa_table(cutouts, settings.shape, settings.root)
