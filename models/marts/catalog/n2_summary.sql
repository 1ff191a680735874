-- N2 hard-confuser mix of the sampled negatives: count and share per category (N1 included), per
-- split and over all splits. Every category in n2_priority appears, with 0 if dead, so a category
-- that stopped firing is visible at a glance.
-- Two N2 shares per split: n2_share_of_split over all negatives, and n2_share_quota_strata over
-- the strata whose pool could honour the n2_fraction quota. They differ where a stratum ran out of
-- N1 galaxies and was filled with N2 ones (fallback n1_short in sampling_strata) -- e.g. DEV strata,
-- where ring_proxy flags most bright DEV galaxies. n2_share_in_band checks the quota strata against
-- n2_share_band, which is what the sampler controls; the overall share is reported beside it.

{%- set band = var('n2_share_band') %}

with

plan as (

    select
        stratum,
        n2_take = n2_quota as quota_met
    from {{ ref('int_sampling_strata_planned') }}

),

negatives as (

    select
        sampled.split,
        coalesce(sampled.n2_category, 'N1') as category,
        plan.quota_met

    from {{ ref('int_negatives_sampled') }} as sampled
    inner join plan on plan.stratum = sampled.sampled_for_stratum

),

quota_shares as (

    select
        split,
        avg(case when category != 'N1' then 1e0 else 0e0 end) as n2_share_quota_strata
    from negatives
    where quota_met
    group by split
    union all
    select
        'all' as split,
        avg(case when category != 'N1' then 1e0 else 0e0 end) as n2_share_quota_strata
    from negatives
    where quota_met

),

categories as (

    select category from {{ values_table(var('n2_priority') + ['N1'], 'category', 'category_list') }}

),

splits as (

    select distinct split from negatives
    union all
    select 'all' as split

),

counts as (

    select
        split,
        category,
        count(*) as n
    from negatives
    group by split, category
    union all
    select
        'all' as split,
        category,
        count(*) as n
    from negatives
    group by category

),

grid as (

    select
        splits.split,
        categories.category,
        coalesce(counts.n, 0) as n_negatives

    from splits
    cross join categories
    left join counts on counts.split = splits.split and counts.category = categories.category

),

final as (

    select
        grid.split,
        grid.category,
        grid.category != 'N1' as is_n2,
        grid.n_negatives,
        grid.n_negatives / greatest(sum(grid.n_negatives) over (partition by grid.split), 1) as share,
        sum(case when grid.category != 'N1' then grid.n_negatives else 0 end) over (partition by grid.split)
        / greatest(sum(grid.n_negatives) over (partition by grid.split), 1) as n2_share_of_split,
        quota_shares.n2_share_quota_strata,
        coalesce(quota_shares.n2_share_quota_strata between {{ band[0] }} and {{ band[1] }}, false)
            as n2_share_in_band

    from grid
    left join quota_shares on quota_shares.split = grid.split

)

select * from final
order by split, is_n2, category
