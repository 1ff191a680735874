"""``finder_scores``: every run's score per manifest sample, with where its embedding is stored.
Thin: stronglens.training.runs.scores_table reads the files the trainer wrote next to each checkpoint."""


def model(dbt, session):
    dbt.config(materialized="table")
    from stronglens.training.runs import scores_table

    return scores_table(dbt.ref("finder_runs").to_arrow_table())
