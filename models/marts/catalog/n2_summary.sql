-- The N2 hard-confuser mix, per split and over all splits ('all'), one row per category of the
-- active preset's priority plus N1: how common the category is in the negative pool (its own flag,
-- categories overlap) and what share of the sampled negatives it makes up (by n2_category, which
-- is exclusive), beside each split's overall N2 share of the pool and of the sample. Every category
-- appears, with 0 if dead, so a category that stopped firing is visible at a glance. The quality
-- suite n2_summary holds these against the bands of expectations/thresholds.yml.

with

pool as (

    select * from {{ ref('int_negative_pool') }}

),

sampled as (

    select
        split,
        coalesce(n2_category, 'N1') as category
    from {{ ref('int_negatives_sampled') }}

),

categories as (

    select category from {{ values_table(n2_priority() + ['N1'], 'category', 'category_names') }}

),

split_pool_counts as (

    select
        split,
        count(*) as n_pool,
        count(*) filter (where is_n2) as n_pool_n2,
        {%- for category in n2_priority() %}
            count(*) filter (where {{ category }}) as {{ category }},
        {%- endfor %}
        count(*) filter (where not is_n2) as n1

    from pool
    group by split

),

pool_counts as (

    select * from split_pool_counts
    union all
    select
        'all' as split,
        sum(n_pool) as n_pool,
        sum(n_pool_n2) as n_pool_n2,
        {%- for category in n2_priority() %}
            sum({{ category }}) as {{ category }},
        {%- endfor %}
        sum(n1) as n1
    from split_pool_counts

),

pool_long as (

    select
        pool_counts.split,
        pool_counts.n_pool,
        pool_counts.n_pool_n2,
        categories.category,
        case categories.category
            {%- for category in n2_priority() %}
                when '{{ category }}' then pool_counts.{{ category }}
            {%- endfor %}
            else pool_counts.n1
        end as n_pool_flagged

    from pool_counts
    cross join categories

),

sample_counts as (

    select
        split,
        category,
        count(*) as n_negatives
    from sampled
    group by split, category
    union all
    select
        'all' as split,
        category,
        count(*) as n_negatives
    from sampled
    group by category

),

grid as (

    select
        pool_long.split,
        pool_long.category,
        pool_long.n_pool,
        pool_long.n_pool_n2,
        pool_long.n_pool_flagged,
        coalesce(sample_counts.n_negatives, 0) as n_negatives

    from pool_long
    left join sample_counts
        on sample_counts.split = pool_long.split and sample_counts.category = pool_long.category

),

final as (

    select
        split,
        category,
        category != 'N1' as is_n2,
        n_pool_flagged,
        n_pool_flagged / greatest(n_pool, 1) as pool_prevalence,
        n_pool_n2 / greatest(n_pool, 1) as pool_n2_prevalence,
        n_negatives,
        n_negatives / greatest(sum(n_negatives) over (partition by split), 1) as share,
        sum(case when category != 'N1' then n_negatives else 0 end) over (partition by split)
        / greatest(sum(n_negatives) over (partition by split), 1) as n2_share_of_split

    from grid

)

select * from final
order by split, is_n2, category
