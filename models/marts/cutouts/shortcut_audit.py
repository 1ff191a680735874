"""``shortcut_audit``: AUC of each QA feature alone (positives vs negatives) with bootstrap CIs,
overall, per split and per N2 class, plus the audit PNG. Thin: stronglens.cutouts.reports."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.cutouts.reports import audit_table, write_audit_plot

    threshold = float(dbt.config.get("audit_flag_threshold"))
    audit = audit_table(dbt.ref("cutout_qa").to_arrow_table(), dbt.ref("cutout_manifest").to_arrow_table(),
                        n_boot=int(dbt.config.get("audit_n_boot")), seed=int(dbt.config.get("cutout_seed")),
                        flag_threshold=threshold)
    write_audit_plot(audit, dbt.config.get("report_dir"), threshold)
    return audit
