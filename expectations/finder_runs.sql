-- Frame of suite `finder_runs`: the primary run with its test-split AUC over all samples (null when
-- not measurable) and how many samples it scored.
select
    finder_runs.run_id,
    finder_runs.n_params,
    finder_runs.checkpoint_sha256,
    (
        select finder_metrics.value
        from finder_metrics
        where
            finder_metrics.run_id = finder_runs.run_id
            and finder_metrics.split = 'test'
            and finder_metrics.population = 'all'
            and finder_metrics.metric = 'auc'
    ) as test_auc,
    (
        select count(*)
        from finder_scores
        where finder_scores.run_id = finder_runs.run_id
    ) as n_scored,
    (select count(*) from training_manifest) as n_manifest
from finder_runs
where finder_runs.is_primary
