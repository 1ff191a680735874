"""``shortcut_audit``: AUC of each QA feature alone (positives vs negatives) with bootstrap CIs,
overall, per split and per N2 class, plus the audit PNG; for the synthetic source also the positives'
arc-free twins vs the negatives (scope_kind arc_free), which tells the arc signal from a shortcut.
Thin: stronglens.cutouts.reports and stronglens.cutouts.render."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.pipeline import neighbour_offsets
    from stronglens.cutouts.render import RenderConfig, arc_free_qa
    from stronglens.cutouts.reports import audit_table, write_audit_plot
    from stronglens.cutouts.settings import CutoutSettings

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    manifest = dbt.ref("cutout_manifest").to_arrow_table()
    twins = None
    if settings.source == "synthetic":  # the real sources' lenses are unknown: no twin to render
        neighbours = neighbour_offsets(dbt.ref("int_cutout_neighbours").to_arrow_table())
        config = RenderConfig(n_pix=settings.size, pixel_scale=settings.pixscale)
        twins = arc_free_qa(manifest, neighbours, seed=settings.seed, config=config)
    audit = audit_table(dbt.ref("cutout_qa").to_arrow_table(), manifest,
                        n_boot=settings.audit_n_boot, seed=settings.seed,
                        flag_threshold=settings.audit_flag_threshold, arc_free_qa=twins)
    write_audit_plot(audit, dbt.config.get("report_dir"), settings.audit_flag_threshold)
    return audit
