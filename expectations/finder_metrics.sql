-- Frame of suite `finder_metrics`: one row per (split, population) that the primary finder run
-- must report -- all, tier_A/tier_B where the split has such positives, n2:<category> and
-- type:<TYPE> for every category/type among the split's samples -- with the metric rows it has.
with

primary_run as (

    select run_id from finder_runs
    where is_primary

),

split_populations as (

    select distinct
        split,
        'all' as population
    from training_manifest
    union
    select distinct
        split,
        'tier_' || tier as population
    from training_manifest
    where label = 1
    union
    select distinct
        split,
        'n2:' || n2_category as population
    from training_manifest
    where label = 0
    union
    select distinct
        split,
        'type:' || type as population
    from training_manifest

),

reported as (

    select
        finder_metrics.split,
        finder_metrics.population,
        count(*) as n_metric_rows
    from finder_metrics
    inner join primary_run on primary_run.run_id = finder_metrics.run_id
    group by finder_metrics.split, finder_metrics.population

)

select
    split_populations.split,
    split_populations.population,
    coalesce(reported.n_metric_rows, 0) as n_metric_rows
from split_populations
left join reported
    on
        reported.split = split_populations.split
        and reported.population = split_populations.population
