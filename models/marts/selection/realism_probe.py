"""``realism_probe``: linear-probe AUC, real positives vs injections, on the finder's embeddings.
Thin: stronglens.injection.marts.realism_probe_table."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.injection.marts import realism_probe_table, settings_from_json

    settings = settings_from_json(dbt.config.get("injection_settings"))
    injections = (
        dbt.ref("injections").filter("embedding is not null").order("injection_id").project("embedding")
    ).to_arrow_table()
    return realism_probe_table(
        injections,
        dbt.ref("int_realism_positives").to_arrow_table(),
        dbt.ref("finder_runs").to_arrow_table(),
        settings,
    )
