"""``simulated_lenses``: arcs injected into train-split negatives, added to the finder's training
positives; one row per lens with its truth and stored file, and a gallery PNG per theta_E bin.
Thin: the work is stronglens.training.simulations.simulate_lenses."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.training.reports import plot_simulated_lenses
    from stronglens.training.simulations import settings_from_json, simulate_lenses

    settings, cutout_root = settings_from_json(dbt.config.get("simulation_settings"))
    hosts = dbt.ref("int_simulation_hosts_selected").order("host_rank").to_arrow_table()
    table = simulate_lenses(hosts, settings, cutout_root)
    plot_simulated_lenses(
        table.to_pandas(), cutout_root, int(dbt.config.get("cutout_size")), dbt.config.get("report_dir")
    )
    return table
