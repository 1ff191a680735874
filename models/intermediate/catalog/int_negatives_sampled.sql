-- Deterministic stratified sampling. Order inside every (stratum, class) is (sample_hash, galaxy_id):
-- sample_hash is an integer hash of the galaxy key and sampling_seed (macros/hashing.sql), so the
-- sample is identical on any engine, machine or thread count.
-- Stage 1 takes n1_take N1 and n2_take N2 galaxies per stratum. Rows are first pre-filtered by a
-- hash threshold (int_sampling_strata_planned), so only ~take rows per class are ranked rather than
-- the whole pool; a class whose pre-filter kept fewer than `take` rows is re-ranked on all its rows.
-- Stage 2 tops up strata still short of n_wanted from the other galaxies of the same split and
-- type bin, in the same hash order; the deficit strata receive consecutive slices of that order.

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

stage1 as (

    select
        {{ star_except(['take', 'class_rank']) }},
        stratum as sampled_for_stratum,
        1 as sampling_stage

    from stage1_ranked
    where class_rank <= take

),

stage1_counts as (

    select
        stratum,
        count(*) as n_taken
    from stage1
    group by stratum

),

deficits as (

    select
        plan.stratum,
        plan.split,
        plan.type_bin,
        plan.n_wanted - coalesce(stage1_counts.n_taken, 0) as deficit

    from plan
    left join stage1_counts on stage1_counts.stratum = plan.stratum
    where plan.n_wanted > coalesce(stage1_counts.n_taken, 0)

),

deficit_slices as (

    -- each deficit stratum owns ranks (slice_start, slice_end] of its split x type bin's top-up order
    select
        *,
        sum(deficit) over (partition by split, type_bin order by stratum) - deficit as slice_start,
        sum(deficit) over (partition by split, type_bin order by stratum) as slice_end

    from deficits

),

short_bins as (

    select distinct
        split,
        type_bin
    from deficits

),

topup_candidates as (

    select
        pool.*,
        row_number() over (partition by pool.split, pool.type order by pool.sample_hash, pool.galaxy_id)
            as topup_rank

    from pool
    semi join short_bins
        on short_bins.split = pool.split and short_bins.type_bin = pool.type
    anti join stage1 on stage1.galaxy_id = pool.galaxy_id

),

stage2 as (

    select
        {{ star_except(['topup_rank'], 'topup_candidates') }},
        deficit_slices.stratum as sampled_for_stratum,
        2 as sampling_stage

    from topup_candidates
    inner join deficit_slices
        on deficit_slices.split = topup_candidates.split
            and deficit_slices.type_bin = topup_candidates.type
            and deficit_slices.slice_start < topup_candidates.topup_rank
            and deficit_slices.slice_end >= topup_candidates.topup_rank

),

final as (

    select * from stage1
    -- the same columns in the same order (by name is DuckDB-only)
    union all
    select * from stage2

)

select * from final
