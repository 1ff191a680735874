"""``shortcut_audit``: AUC of each QA feature alone (positives vs negatives) with bootstrap CIs,
overall, per split and per N2 class, plus the audit PNG. Thin: stronglens.cutouts.reports."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.reports import audit_table, write_audit_plot
    from stronglens.cutouts.settings import CutoutSettings

    settings = CutoutSettings.from_config(dbt.config.get("cutout_settings"))
    audit = audit_table(dbt.ref("cutout_qa").to_arrow_table(), dbt.ref("cutout_manifest").to_arrow_table(),
                        n_boot=settings.audit_n_boot, seed=settings.seed,
                        flag_threshold=settings.audit_flag_threshold)
    write_audit_plot(audit, dbt.config.get("report_dir"), settings.audit_flag_threshold)
    return audit
