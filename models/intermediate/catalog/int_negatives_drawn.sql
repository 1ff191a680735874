-- Stage 1 of the deterministic stratified sampling: n1_take N1 and n2_take N2 galaxies per stratum
-- (N2 never beyond its quota). Order inside every (stratum, class) is (sample_hash, galaxy_id):
-- sample_hash is an integer hash of the galaxy key and sampling_seed (macros/hashing.sql), so the
-- sample is identical on any engine, machine or thread count. Rows are first pre-filtered by a hash
-- threshold, so only ~take rows per class are ranked rather than the whole pool; a class whose
-- pre-filter kept fewer than `take` rows is re-ranked on all its rows.

{%- set p = 2147483647 %}

with

plan as (

    select * from {{ ref('int_sampling_strata_planned') }}

),

pool as (

    select * from {{ ref('int_negative_pool') }}

),

class_takes as (

    select
        stratum,
        false as is_n2,
        n1_take as take,
        n_available_n1 as available
    from plan
    union all
    select
        stratum,
        true as is_n2,
        n2_take as take,
        n_available_n2 as available
    from plan

),

class_plan as (

    select
        stratum,
        is_n2,
        take,
        available,
        -- hash threshold keeping ~take + 5 sqrt(take) + 20 rows of `available`
        least(1.0, (take + 5 * sqrt(take) + 20) / greatest(available, 1)) * {{ p }} as threshold

    from class_takes
    where take > 0

),

prefiltered as (

    select
        pool.*,
        class_plan.take
    from pool
    inner join class_plan
        on class_plan.stratum = pool.stratum and class_plan.is_n2 = pool.is_n2
    where pool.sample_hash < class_plan.threshold

),

prefilter_counts as (

    select
        stratum,
        is_n2,
        count(*) as n_kept
    from prefiltered
    group by stratum, is_n2

),

short_classes as (

    select
        class_plan.stratum,
        class_plan.is_n2,
        class_plan.threshold,
        class_plan.take
    from class_plan
    left join prefilter_counts
        on prefilter_counts.stratum = class_plan.stratum and prefilter_counts.is_n2 = class_plan.is_n2
    where coalesce(prefilter_counts.n_kept, 0) < class_plan.take

),

stage1_candidates as (

    select * from prefiltered
    union all
    select
        pool.*,
        short_classes.take
    from pool
    inner join short_classes
        on short_classes.stratum = pool.stratum and short_classes.is_n2 = pool.is_n2
    where pool.sample_hash >= short_classes.threshold

),

stage1_ranked as (

    select
        *,
        row_number() over (partition by stratum, is_n2 order by sample_hash, galaxy_id) as class_rank

    from stage1_candidates

),

final as (

    select
        {{ star_except(['take', 'class_rank']) }},
        stratum as sampled_for_stratum,
        1 as sampling_stage

    from stage1_ranked
    where class_rank <= take

)

select * from final
