-- N2 hard-confuser mix of the sampled negatives: count and share per category (N1 included), per
-- split and over all splits. Every category in n2_priority appears, with 0 if dead, so a category
-- that stopped firing is visible at a glance; n2_share_in_band checks the total N2 share.

{%- set band = var('n2_share_band') %}

with

negatives as (

    select split, coalesce(n2_category, 'N1') as category from {{ ref('int_negatives_sampled') }}

),

categories as (

    select unnest([{{ sql_string_list(var('n2_priority')) }}, 'N1']) as category

),

splits as (

    select distinct split from negatives
    union all
    select 'all' as split

),

counts as (

    select split, category, count(*) as n from negatives group by split, category
    union all
    select 'all' as split, category, count(*) as n from negatives group by category

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
        split,
        category,
        category != 'N1' as is_n2,
        n_negatives,
        n_negatives / greatest(sum(n_negatives) over (partition by split), 1) as share,
        sum(case when category != 'N1' then n_negatives else 0 end) over (partition by split)
            / greatest(sum(n_negatives) over (partition by split), 1) as n2_share_of_split,
        sum(case when category != 'N1' then n_negatives else 0 end) over (partition by split)
            / greatest(sum(n_negatives) over (partition by split), 1)
            between {{ band[0] }} and {{ band[1] }} as n2_share_in_band

    from grid

)

select * from final
order by split, is_n2, category
